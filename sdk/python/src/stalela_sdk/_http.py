"""The one request layer under both clients: what to send, when to retry, how to read the answer.

``Stalela`` and ``AsyncStalela`` differ only in how they wait (``time.sleep`` or ``asyncio.sleep``) and
which httpx client sends; every decision (headers, Idempotency-Key, retry or not, the delay, the error
class) is made here, once.

Retry rules. A retry must never seal an invoice twice, so what is retried depends on whether the request
may already have been carried out:
- the connection could not be opened (``ConnectError``, ``ConnectTimeout``): nothing was sent, any request;
- 429 and 503: the server refused before doing anything (rate limit, database away), any request;
- a broken or timed-out exchange, 502 and 504: the request may have been done, so only requests that are
  safe to repeat: GET/PUT/PATCH/DELETE, and the POSTs that take an ``Idempotency-Key`` (the same key is
  sent on every attempt, so the server answers a repeat with the original result).
"""
from __future__ import annotations

import random
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping

import httpx

from stalela_sdk._version import __version__
from stalela_sdk.errors import APIConnectionError, error_from_response, parse_retry_after

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 30.0
USER_AGENT = f"stalela-sdk-python/{__version__}"

# POST routes whose server honours an Idempotency-Key header (docs/api.md, "Idempotency").
_IDEMPOTENT_POSTS = (re.compile(r"/v1/invoices"), re.compile(r"/v1/tenants"))
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with jitter; ``max_retries`` counts retries, not attempts.

    A ``Retry-After`` from the server is obeyed (up to ``max_retry_after``) instead of the backoff."""
    max_retries: int = 3
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0
    always_statuses: frozenset[int] = frozenset({429, 503})
    idempotent_statuses: frozenset[int] = frozenset({502, 504})

    def backoff(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first)."""
        if retry_after is not None:
            # A little jitter on top, so clients told the same Retry-After do not come back in one burst.
            return min(retry_after, self.max_retry_after) * (1 + 0.1 * random.random())
        ceiling = min(self.max_delay, self.initial_delay * (2 ** retry))
        # "Equal jitter": at least half the ceiling (backoff keeps growing), at most all of it.
        return ceiling / 2 + random.uniform(0, ceiling / 2)


NO_RETRIES = RetryPolicy(max_retries=0)


@dataclass
class Call:
    method: str
    url: str  # a path under the base URL, or an absolute URL (a status list's public address)
    params: dict[str, Any] | None = None
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    repeatable: bool = False  # safe to send again even if a previous attempt may have been carried out
    raw: bool = False  # answer the bytes (PDF, CSV, XLSX) instead of JSON


def new_idempotency_key() -> str:
    return f"sdk-{uuid.uuid4()}"


def idempotent_post(path: str) -> bool:
    return any(p.fullmatch(path) for p in _IDEMPOTENT_POSTS)


def build_call(method: str, url: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
               idempotency_key: str | None = None, headers: Mapping[str, str] | None = None,
               raw: bool = False, repeatable: bool = False) -> Call:
    """``repeatable``: the caller knows this POST is idempotent on the server (an offline batch's merge)."""
    method = method.upper()
    hdrs = dict(headers or {})
    repeatable = repeatable or method in _SAFE_METHODS
    if method == "POST" and idempotent_post(url):
        # Generated once per call and kept across its retries: that is what makes the retry safe.
        hdrs["Idempotency-Key"] = idempotency_key or new_idempotency_key()
        repeatable = True
    elif idempotency_key is not None:
        raise ValueError(f"{method} {url} does not take an Idempotency-Key")
    clean = {k: _param(v) for k, v in (params or {}).items() if v is not None}
    return Call(method, url, clean or None, json, hdrs, repeatable, raw)


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def retry_delay(policy: RetryPolicy, call: Call, retry: int, *, response: httpx.Response | None = None,
                error: Exception | None = None) -> float | None:
    """Seconds to wait before retrying ``call`` after this outcome, or None not to retry."""
    if retry >= policy.max_retries:
        return None
    if error is not None:
        if isinstance(error, _NEVER_SENT) or (call.repeatable and isinstance(error, httpx.TransportError)):
            return policy.backoff(retry)
        return None
    assert response is not None
    status = response.status_code
    if status in policy.always_statuses or (call.repeatable and status in policy.idempotent_statuses):
        return policy.backoff(retry, parse_retry_after(response.headers.get("retry-after")))
    return None


def default_headers(token: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json, application/problem+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    headers.update(extra or {})
    return headers


def result(call: Call, response: httpx.Response) -> Any:
    """The decoded answer of a 2xx, or the typed error of anything else."""
    if response.status_code >= 400 or response.status_code < 200:
        raise error_from_response(response)
    if call.raw:
        return response.content
    if response.status_code == 204 or not response.content:
        return None
    return response.json()


def connection_error(call: Call, exc: Exception) -> APIConnectionError:
    err = APIConnectionError(f"{call.method} {call.url}: {type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err


def to_request(client: httpx.Client | httpx.AsyncClient, call: Call) -> httpx.Request:
    request = client.build_request(call.method, call.url, params=call.params, json=call.json, headers=call.headers)
    # An absolute URL (a status list's public address) may name another host: never send it our credential.
    if request.url.netloc != client.base_url.netloc:
        request.headers.pop("Authorization", None)
    return request
