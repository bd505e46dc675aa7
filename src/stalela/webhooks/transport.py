"""Sending one webhook request safely: SSRF guard, no redirects, a total timeout, a capped body read.

The guard sits where the socket is opened (an httpcore network backend): the host is resolved there,
every address it resolves to is checked, and the connection goes to the checked address. Checking
the URL earlier and letting the HTTP client resolve again would leave a DNS-rebinding gap. TLS still
verifies the certificate against the host name (SNI), not the address.
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
import weakref
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Iterable
from urllib.parse import urlsplit

import httpcore

from stalela import __version__
from stalela.errors import ValidationFailed

USER_AGENT = f"Stalela-Webhooks/{__version__}"
BODY_READ_LIMIT = 4096  # bytes of a receiver's answer read (and kept, truncated, in the attempt log)
BODY_KEPT = 1024
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOCAL_NAMES = ("localhost", "localhost.", "metadata.google.internal", "metadata.google.internal.")


class ForbiddenAddress(Exception):
    """The host resolves to an address webhooks may not reach (private, loopback, metadata...)."""


def address_allowed(value: str) -> bool:
    """Only globally routable unicast addresses: no private, loopback, link-local (cloud metadata at
    169.254.169.254), shared (100.64/10), reserved, multicast or unspecified ones, however written."""
    ip = ipaddress.ip_address(value.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip in _NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        elif ip.sixtofour is not None:
            ip = ip.sixtofour
    return ip.is_global and not ip.is_multicast


def check_url(url: str, allow_private: bool) -> str:
    """What can be checked without the network, when an endpoint is saved. Delivery checks again."""
    def refuse(detail: str, code: str = "webhook_url_invalid") -> ValidationFailed:
        return ValidationFailed(detail, code=code, field="url")

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise refuse(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise refuse("must be an absolute https:// URL")
    if parts.scheme == "http" and not allow_private:
        raise refuse("must use https", code="webhook_url_not_https")
    if parts.username is not None or parts.password is not None:
        raise refuse("must not carry credentials; authenticate the request by its signature")
    if parts.fragment:
        raise refuse("must not have a #fragment")
    if port == 0:
        raise refuse("port 0 is not a valid port")
    host = parts.hostname.lower()
    if not allow_private:
        if host in _LOCAL_NAMES or host.endswith((".localhost", ".localhost.")):
            raise refuse("must not point at this machine", code="webhook_url_forbidden")
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None and not address_allowed(str(literal)):
            raise refuse("must not point at a private, loopback, link-local or metadata address",
                         code="webhook_url_forbidden")
    return url


class GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable | None = None) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        if not self.allow_private:
            bad = [a for a in addresses if not address_allowed(a)]
            if bad:  # one bad answer is enough: a mixed answer is how rebinding attacks start
                raise ForbiddenAddress(f"refused: {host} resolves to a non-public address ({bad[0]})")
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                     socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error or httpcore.ConnectError(f"{host} did not resolve")

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable | None = None) -> httpcore.AsyncNetworkStream:
        raise ForbiddenAddress("unix sockets are not webhook targets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


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
