"""Sending one webhook request safely: SSRF guard, no redirects, a total timeout, a capped body read.

The guard is the one every tenant-set outbound URL goes through (``stalela.kit.netguard``): it sits
where the socket is opened, so the address checked is the address connected to.
"""
from __future__ import annotations

import asyncio
import socket
import ssl
import time
import weakref
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpcore

from stalela import __version__
from stalela.kit.netguard import ForbiddenAddress, GuardedBackend

USER_AGENT = f"Stalela-Webhooks/{__version__}"
BODY_READ_LIMIT = 4096  # bytes of a receiver's answer read (and kept, truncated, in the attempt log)
BODY_KEPT = 1024


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer at all (refused, timeout, TLS error...)
    latency_ms: int
    body: str | None = None
    error: str | None = None
    retry_after: float | None = None  # seconds, from a 429 or 503's Retry-After

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


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, (asyncio.TimeoutError, httpcore.TimeoutException)):
        return f"timeout: no complete answer within {timeout:g} s"
    if isinstance(exc, ForbiddenAddress):
        return str(exc)
    if isinstance(exc, httpcore.ConnectError):
        return f"connection failed: {exc}"[:300]
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc}"[:300]
    if isinstance(exc, socket.gaierror):
        return f"DNS lookup failed: {exc}"[:300]
    return f"{type(exc).__name__}: {exc}"[:300]


async def post(url: str, headers: dict[str, str], body: bytes, *, timeout: float, allow_private: bool) -> Answer:
    """POST once. Redirects are answers like any other (3xx is not success); nothing is followed."""
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
        return Answer(None, _elapsed(started), error=_describe(exc, timeout))
    retry_after = parse_retry_after(answer_headers.get("retry-after")) if response.status in (429, 503) else None
    text = received[:BODY_KEPT].decode("utf-8", "replace") or None
    return Answer(response.status, _elapsed(started), body=text, retry_after=retry_after)


def _elapsed(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
