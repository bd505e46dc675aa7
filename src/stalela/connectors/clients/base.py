"""What every platform client offers, and the one HTTP path they all take.

Every call goes through the outbound guard (``stalela.kit.netguard``): a connection's API base URL is the
tenant's to set, so it is an SSRF risk like a webhook URL. JSON is parsed with ``parse_float=Decimal``:
Mercado Libre sends money as JSON numbers, and a float would round it before we ever see it.
"""
from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import httpx

from stalela import __version__
from stalela.kit import netguard

USER_AGENT = f"Stalela-Connectors/{__version__} (+https://stalela.dev/docs/connectors)"
TIMEOUT = httpx.Timeout(10.0, connect=3.0)

# Asks the connection's token source for an access token; ``True`` forces a refresh (after a 401).
TokenSource = Callable[[bool], Awaitable[str]]


class PlatformError(Exception):
    """A platform call that failed. ``transient``: worth retrying later (5xx, 429, timeout, no answer);
    otherwise the request itself is wrong (4xx) and retrying it unchanged would fail the same way."""

    def __init__(self, message: str, *, status: int | None = None, transient: bool = False,
                 code: str = "platform_error") -> None:
        super().__init__(message)
        self.status, self.transient, self.code = status, transient, code


class OrderNotFound(PlatformError):
    def __init__(self, ref: str) -> None:
        super().__init__(f"the platform has no order {ref}", status=404, code="order_not_found")


@dataclass
class Written:
    """What a write-back left on the platform (shown on the order's page in our console)."""

    done: list[str] = field(default_factory=list)


class PlatformClient(Protocol):
    platform: str

    async def fetch_order(self, order_ref: str) -> dict[str, Any]: ...

    async def complete(self, order: dict[str, Any]) -> dict[str, Any]:
        """The unit one invoice is made of: the order itself, or (Mercado Libre) its whole pack."""
        ...

    async def buyer_details(self, order: dict[str, Any]) -> dict[str, Any] | None: ...

    def updated_since(self, cursor: str | None) -> AsyncIterator[list[dict[str, Any]]]: ...

    async def write_back(self, order: dict[str, Any], fiscal_number: str, verify_url: str,
                         pdf: Callable[[], Awaitable[bytes]]) -> Written: ...


def loads(raw: bytes | str) -> Any:
    return json.loads(raw, parse_float=Decimal)


def decode(response: httpx.Response) -> Any:
    """A platform's JSON answer; anything else (a proxy's HTML page with a 200) is a transient failure, not an
    order we could not read: the call is tried again later."""
    try:
        return loads(response.content)
    except (ValueError, RecursionError):
        raise PlatformError(f"{response.request.method} {response.request.url.path}: the answer is not JSON",
                            status=response.status_code, transient=True, code="platform_unavailable") from None


def dumps(value: Any) -> bytes:
    return json.dumps(value, default=str, separators=(",", ":")).encode()


# One guarded client per event loop and rule, so connections are pooled across calls. Per loop, because a
# client's pooled sockets belong to the loop that opened them (a process with several loops over its life,
# such as a test run, must not reuse another loop's).
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[bool, httpx.AsyncClient]] = \
    weakref.WeakKeyDictionary()


def http(allow_private: bool) -> httpx.AsyncClient:
    clients = _clients.setdefault(asyncio.get_running_loop(), {})
    client = clients.get(allow_private)
    if client is None or client.is_closed:
        client = clients[allow_private] = netguard.guarded_client(
            allow_private, limits=httpx.Limits(max_connections=50, max_keepalive_connections=20))
    return client


async def close() -> None:
    """Close this loop's clients (at shutdown)."""
    for client in list(_clients.pop(asyncio.get_running_loop(), {}).values()):
        await client.aclose()


async def call(allow_private: bool, method: str, url: str, *, headers: dict[str, str] | None = None,
               ok: tuple[int, ...] = (200, 201), **kwargs: Any) -> httpx.Response:
    """One request; a failure becomes a ``PlatformError`` that says whether retrying may help."""
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}
    try:
        response = await http(allow_private).request(method, url, headers=headers, timeout=TIMEOUT, **kwargs)
    except httpx.HTTPError as exc:
        raise PlatformError(f"{method} {_path(url)}: no answer ({type(exc).__name__})", transient=True,
                            code="platform_unreachable") from None
    if response.status_code in ok:
        return response
    transient = response.status_code >= 500 or response.status_code in (408, 429)
    raise PlatformError(f"{method} {_path(url)}: {response.status_code} {response.text[:200]}",
                        status=response.status_code, transient=transient,
                        code="platform_unavailable" if transient else "platform_refused")


def _path(url: str) -> str:
    return httpx.URL(url).path


async def authorised(token: TokenSource, send: Callable[[str], Awaitable[httpx.Response]]) -> httpx.Response:
    """Send with the current access token; on a 401, once more with a refreshed one (expired tokens)."""
    try:
        return await send(await token(False))
    except PlatformError as exc:
        if exc.status != 401:
            raise
    return await send(await token(True))
