"""One error hierarchy for the whole service.

Every error the service raises on purpose is a ``StalelaError``: it carries the HTTP status, a stable
machine ``code`` and, for input errors, the offending field(s). The single handler in ``app.py``
renders them as RFC 9457 ``application/problem+json``. This module is framework-free so the pure
fiscal core can raise these errors too.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class FieldError:
    field: str
    code: str
    detail: str
    # The values the detail names (pydantic's ``ctx``): a translated sentence names them too
    # (kit/problems.py). Not part of the problem document.
    values: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "detail": self.detail}


class StalelaError(Exception):
    status: int = 500
    code: str = "internal_error"
    title: str = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        field: str | None = None,
        errors: list[FieldError] | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.detail = detail or self.title
        if code:
            self.code = code
        self.field = field
        self.errors = errors or []
        self.extra = extra or {}
        self.headers = headers or {}
        super().__init__(self.detail)

    def __reduce__(self):  # noqa: ANN204
        # Pickled whole, whatever a subclass's __init__ takes: a rejection crosses from the process that
        # sealed to the one that answers (fiscal/invoices/owners.py).
        return (_rebuild, (type(self), self.args, self.__dict__))

    def problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"https://stalela.dev/problems/{self.code}",
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
        }
        if self.field:
            body["field"] = self.field
        if self.errors:
            body["errors"] = [e.as_dict() for e in self.errors]
        body.update(self.extra)
        return body


def _rebuild(cls: type[StalelaError], args: tuple, state: dict[str, Any]) -> StalelaError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class BadRequest(StalelaError):
    status = 400
    code = "bad_request"
    title = "Bad request"


class Unauthorized(StalelaError):
    status = 401
    code = "unauthorized"
    title = "Authentication required"

    def __init__(self, detail: str | None = None, **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kw)


class Forbidden(StalelaError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(StalelaError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(StalelaError):
    status = 409
    code = "conflict"
    title = "Conflict"


class PayloadTooLarge(StalelaError):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"


class UnsupportedMediaType(StalelaError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class ValidationFailed(StalelaError):
    """Input that is well-formed but breaks a rule (schema or fiscal)."""

    status = 422
    code = "validation_failed"
    title = "Validation failed"


class FiscalRuleViolation(ValidationFailed):
    """A jurisdiction's fiscal rule rejected the invoice. ``code`` names the rule."""

    title = "Fiscal rule violated"

    def __init__(self, code: str, field: str, detail: str) -> None:
        super().__init__(detail, code=code, field=field, errors=[FieldError(field, code, detail)])


class TooManyRequests(StalelaError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"


class ServiceUnavailable(StalelaError):
    """Something the service depends on is away: the client should retry after ``Retry-After`` seconds."""

    status = 503
    code = "service_unavailable"
    title = "Service unavailable"
    retry_after = 5

    def __init__(self, detail: str | None = None, *, retry_after: int | None = None, **kw: Any) -> None:
        kw.setdefault("headers", {"Retry-After": str(retry_after or self.retry_after)})
        super().__init__(detail, **kw)

    def cause(self) -> str:
        """What failed underneath, in one line for the log: the driver's message, not its SQL."""
        below = self.__cause__
        if below is None:
            return self.detail
        below = getattr(below, "orig", None) or below  # SQLAlchemy wraps the driver's error
        lines = str(below).strip().splitlines()
        return f"{type(below).__name__}: {lines[0][:200]}" if lines else type(below).__name__


class DatabaseUnavailable(ServiceUnavailable):
    """The database cannot be reached, refuses connections or is read-only (``stalela.db.outages``)."""

    code = "database_unavailable"
    title = "Database unavailable"


class CacheUnavailable(ServiceUnavailable):
    """Redis (STALELA_REDIS_URL) cannot be reached for something that must not run without it."""

    code = "cache_unavailable"
    title = "Cache unavailable"


def _field_path(loc: tuple[Any, ...], prefix: str = "") -> str:
    """('body', 'lines', 3, 'tax_group') -> 'lines[3].tax_group'."""
    parts = list(loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)
    out = prefix
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or (str(loc[0]) if loc else "")


def validation_problem(errors: list[dict[str, Any]], *, prefix: str = "") -> ValidationFailed:
    """Pydantic's errors as one 422 problem naming every offending field (``prefix`` before each path)."""
    fields = []
    for e in errors:
        code = {"extra_forbidden": "unknown_field", "missing": "required"}.get(e.get("type", ""), e.get("type", "invalid"))
        fields.append(FieldError(_field_path(tuple(e.get("loc", ())), prefix), code, e.get("msg", "invalid"),
                                 values=e.get("ctx")))
    first = fields[0] if fields else None
    detail = f"{first.field}: {first.detail}" if first else "invalid request"
    return ValidationFailed(detail, field=first.field if first else None, errors=fields)
