"""Sending one webhook request safely: SSRF guard, no redirects, a total timeout, a capped body read.

The guard is the one every tenant-set outbound URL goes through (``stalela.kit.netguard``): it sits
where the socket is opened, so the address checked is the address connected to.
"""
from __future__ import annotations

import asyncio
import ssl
import time
import weakref
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpcore

from stalela import __version__
from stalela.kit import netguard
from stalela.kit.netguard import GuardedBackend

USER_AGENT = f"Stalela-Webhooks/{__version__}"
BODY_READ_LIMIT = 4096  # bytes of a receiver's answer read (and kept, truncated, in the attempt log)
BODY_KEPT = 1024


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer at all (refused, timeout, TLS error...)
    latency_ms: int
    body: str | None = None
    error: str | None = None  # what the tenant sees in the attempt log: one fixed text per class
    retry_after: float | None = None  # seconds, from a 429 or 503's Retry-After
    detail: str | None = None  # what failed exactly (addresses, refused or timed out...): the log only

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(min(int(value), 86400))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return float(min(max(0.0, when.timestamp() - time.time()), 86400.0))


# One connection pool per event loop (and guard mode): keep-alive to busy receivers, never shared
# across loops (httpcore's pools are bound to the loop that made them).
_pools: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[bool, httpcore.AsyncConnectionPool]]" = (
    weakref.WeakKeyDictionary())


def _pool(allow_private: bool) -> httpcore.AsyncConnectionPool:
    per_loop = _pools.setdefault(asyncio.get_running_loop(), {})
    if allow_private not in per_loop:
        per_loop[allow_private] = httpcore.AsyncConnectionPool(
            ssl_context=ssl.create_default_context(), max_connections=512, max_keepalive_connections=128,
            keepalive_expiry=30.0, network_backend=GuardedBackend(allow_private))
    return per_loop[allow_private]


async def close_pools() -> None:
    for pool in _pools.pop(asyncio.get_running_loop(), {}).values():
        await pool.aclose()


# What a tenant sees when no HTTP answer came. One text whether the name did not resolve, resolved to
# an address the guard refuses, the connection was refused, reset or timed out: telling those apart
# would make a webhook URL a probe of networks and ports (and of this server's DNS view).
UNREACHABLE = ("no HTTP answer: the endpoint could not be reached or did not answer within {timeout:g} s "
               "(details in the server logs)")
# The one failure told apart: the receiver's own public endpoint presents a certificate that does not
# verify. It is the commonest receiver misconfiguration and the merchant cannot find it otherwise; what
# it says (something at that public address speaks TLS with another certificate) anyone on the internet
# can see, and the address is public, or the guard would have refused it. No certificate details.
TLS_CERTIFICATE = ("TLS certificate not accepted: it is expired, not valid for the URL's host name or not "
                   "issued by a trusted authority")


# A URL saved before a rule existed (plain http, credentials...): nothing is sent until it is saved again.
URL_REFUSED = "URL refused, nothing was sent: {reason}; save the endpoint's URL again"


def _describe(exc: BaseException, timeout: float) -> tuple[str, str]:
    """(the attempt log's fixed text, the details for the server log)."""
    detail = f"{type(exc).__name__}: {exc}"[:500]
    cause: BaseException | None = exc
    while cause is not None:  # httpcore wraps the ssl error in a ConnectError
        if isinstance(cause, ssl.SSLCertVerificationError):
            return TLS_CERTIFICATE, detail
        cause = cause.__cause__ or cause.__context__
    return UNREACHABLE.format(timeout=timeout), detail


async def post(url: str, headers: dict[str, str], body: bytes, *, timeout: float, allow_private: bool) -> Answer:
    """POST once. Redirects are answers like any other (3xx is not success); nothing is followed."""
    reason = netguard.refused(url, allow_private=allow_private)
    if reason is not None:
        return Answer(None, 0, error=URL_REFUSED.format(reason=reason), detail=f"saved URL refused: {reason}")
    request_headers = [(b"content-type", b"application/json"), (b"user-agent", USER_AGENT.encode())]
    request_headers += [(k.encode(), v.encode()) for k, v in headers.items()]
    limits = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):  # the whole exchange, not each read
            async with _pool(allow_private).stream("POST", url, headers=request_headers, content=body,
                                                   extensions={"timeout": limits}) as response:
                received = b""
                async for chunk in response.aiter_stream():
                    received += chunk
                    if len(received) >= BODY_READ_LIMIT:
                        break  # the rest is not read: closing drops the connection instead
                answer_headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers}
    except Exception as exc:  # noqa: BLE001 - every failure is an attempt's outcome, not a crash
        error, detail = _describe(exc, timeout)
        return Answer(None, _elapsed(started), error=error, detail=detail)
    retry_after = parse_retry_after(answer_headers.get("retry-after")) if response.status in (429, 503) else None
    text = received[:BODY_KEPT].decode("utf-8", "replace") or None
    return Answer(response.status, _elapsed(started), body=text, retry_after=retry_after)


def _elapsed(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
