"""Typed errors built from Stalela's RFC 9457 problem+json answers.

Catch by class (``except NotFound``) for the HTTP status class, and branch on ``code`` (stable, the same
as the server's ``code``) for the exact reason. ``field`` names the input at fault when there is one.
"""
from __future__ import annotations

from typing import Any

import httpx


class StalelaError(Exception):
    """An error answer from the API (or, for ``APIConnectionError``, no answer at all)."""

    def __init__(self, detail: str, *, status: int | None = None, code: str | None = None,
                 field: str | None = None, errors: list[dict[str, Any]] | None = None,
                 title: str | None = None, type: str | None = None, request_id: str | None = None,
                 body: Any = None, headers: httpx.Headers | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.code = code
        self.field = field
        self.errors = errors or []
        self.title = title
        self.type = type
        self.request_id = request_id
        self.body = body
        self.headers = headers if headers is not None else httpx.Headers()

    def __str__(self) -> str:
        where = f" (field {self.field})" if self.field else ""
        return f"{self.status} {self.code}: {self.detail}{where}" if self.status else self.detail

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, field={self.field!r})"


class APIConnectionError(StalelaError):
    """The server could not be reached (or the connection broke), after every retry."""


class ValidationError(StalelaError):
    """400 or 422: the request itself is wrong; ``errors`` lists every field at fault."""


class AuthenticationError(StalelaError):
    """401: no credential, an invalid or revoked one, or an expired token."""


class PermissionDenied(StalelaError):
    """403: a valid credential without the scope, outlet or tenant state this needs."""


class NotFound(StalelaError):
    """404: absent, or not visible to this credential (another outlet's, another tenant's)."""


class Conflict(StalelaError):
    """409: the state forbids it now (a used reference, a key in use, an export not ready, a fork...)."""


class RateLimited(StalelaError):
    """429 after every retry; ``retry_after`` is the server's wait in seconds (None if it gave none)."""

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("retry-after"))


class ServerError(StalelaError):
    """5xx after every retry."""


_BY_STATUS: dict[int, type[StalelaError]] = {
    400: ValidationError, 422: ValidationError, 401: AuthenticationError, 403: PermissionDenied,
    404: NotFound, 409: Conflict, 429: RateLimited,
}


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds; the HTTP-date form is not used by Stalela, so it reads as absent."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(0.0, seconds)


def error_from_response(response: httpx.Response) -> StalelaError:
    """The error for a non-2xx answer: problem+json when the server sent one, else the status line."""
    body: Any
    try:
        body = response.json()
    except ValueError:
        body = response.text
    problem = body if isinstance(body, dict) else {}
    status = response.status_code
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else StalelaError)
    detail = problem.get("detail") or problem.get("title") or (body if isinstance(body, str) and body else None) \
        or response.reason_phrase or f"HTTP {status}"
    return cls(str(detail), status=status, code=problem.get("code"), field=problem.get("field"),
               errors=problem.get("errors") if isinstance(problem.get("errors"), list) else None,
               title=problem.get("title"), type=problem.get("type"),
               request_id=problem.get("request_id") or response.headers.get("x-request-id"),
               body=body, headers=response.headers)
