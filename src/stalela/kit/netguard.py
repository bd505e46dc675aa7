"""The one guard for every outbound URL a tenant can set (webhook endpoints, DGI device URLs, ...).

A tenant-chosen URL makes this server send requests, often with a credential, wherever the tenant
says: without a guard that is a way into the private network (SSRF). The policy, applied twice:

- when the URL is saved (``vet_url``): the URL's syntax (https only, no credentials, no fragment,
  optionally no query string), its host IDNA-encoded, and every address the host resolves to;
- when a saved URL is used (``refused``): the same URL rules again, for rows saved before a rule;
- when a connection is opened (``GuardedBackend``): the host is resolved there, every address is
  checked, and the socket goes to the checked address. Checking only at save time, or checking and
  then letting the HTTP client resolve again, would leave a DNS-rebinding gap. TLS still verifies the
  certificate against the host name (SNI), not the address.

Refused: private, loopback, link-local (cloud metadata at 169.254.169.254 and fd00:ec2::254), shared
(100.64/10), reserved, multicast and unspecified addresses, however written (the IPv6 forms that
carry an IPv4 address are judged by it), any IPv6 address outside global unicast 2000::/3 (site-local
fec0::/10 included), and the names of this machine. ``allow_private`` (the development setting
``STALELA_WEBHOOKS_ALLOW_PRIVATE``) lifts the address checks and allows plain http, for servers on
loopback in development and tests.

Also here: ``check_header_value``, for secrets that later go into a request header.
"""
from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
from typing import Iterable
from urllib.parse import urlsplit, urlunsplit

import httpcore
import httpx
import idna

from stalela.errors import FieldError, ValidationFailed

_LOCAL_NAMES = ("localhost", "metadata.google.internal")
# Letters, digits, hyphens (and underscores, which real DNS names carry) per label, once IDNA-encoded.
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_VISIBLE_ASCII = re.compile(r"^[\x21-\x7e]+$")
SAVE_RESOLVE_TIMEOUT = 3.0  # seconds: a name that does not resolve in time is left to connect time


class ForbiddenAddress(httpcore.ConnectError):
    """The host resolves to an address outbound requests may not reach (private, loopback, metadata...).

    A ``ConnectError`` so that HTTP clients treat it as the failed connection it is (httpx maps it to
    ``httpx.ConnectError``)."""


_net = ipaddress.ip_network
# IPv6 forms whose last 32 bits are the IPv4 address actually reached: IPv4-compatible (deprecated, and
# it holds :: and ::1), IPv4-mapped, IPv4-translated (SIIT) and the well-known NAT64 prefix.
_IPV4_IN_LAST_32 = tuple(_net(n) for n in ("::/96", "::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96"))
_GLOBAL_UNICAST = _net("2000::/3")
# Inside 2000::/3, the blocks IANA's special-purpose registry marks as not globally reachable (the
# registry's few anycast exceptions in 2001::/23 are no webhook receivers: refused too). Listed here,
# not taken from ``ipaddress.is_global``, whose answer changed between Python patch releases.
_NOT_GLOBAL_V6 = tuple(_net(n) for n in (
    "2001::/23",  # IETF protocol assignments (benchmarking 2001:2::/48...); Teredo is unwrapped before
    "2001:db8::/32", "3fff::/20",  # documentation
    "5f00::/16",  # SRv6 segment identifiers
))
_NOT_GLOBAL_V4 = _net("192.0.0.0/24")  # IETF protocol assignments (``is_global`` misses parts on 3.11)
_TEREDO, _SIXTOFOUR = _net("2001::/32"), _net("2002::/16")
# Local-use NAT64 (RFC 8215): a translator inside the hosting network, at a prefix length (/48 to /96)
# that decides where the IPv4 address sits. Unknowable from here, so refused whole.
_LOCAL_NAT64 = _net("64:ff9b:1::/48")


def _ipv4_allowed(ip: ipaddress.IPv4Address) -> bool:
    return ip.is_global and not ip.is_multicast and ip not in _NOT_GLOBAL_V4


def address_allowed(value: str) -> bool:
    """Only globally routable unicast addresses: no private, loopback, link-local (cloud metadata at
    169.254.169.254), shared (100.64/10), reserved, multicast or unspecified ones, however written.

    IPv6: only global unicast (2000::/3, so no site-local fec0::/10, ULA, link-local or multicast)
    outside the special-purpose blocks; the forms that carry an IPv4 address (IPv4-compatible,
    -mapped, -translated, NAT64, 6to4, Teredo's server and client) are judged by that address."""
    ip = ipaddress.ip_address(value.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv4Address):
        return _ipv4_allowed(ip)
    if any(ip in net for net in _IPV4_IN_LAST_32):
        return _ipv4_allowed(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip in _SIXTOFOUR:
        return _ipv4_allowed(ip.sixtofour)
    if ip in _TEREDO:
        return all(_ipv4_allowed(embedded) for embedded in ip.teredo)
    if ip in _LOCAL_NAT64:
        return False
    return ip in _GLOBAL_UNICAST and not any(ip in net for net in _NOT_GLOBAL_V6)


def _refuser(field: str, code_prefix: str):  # noqa: ANN202
    def refuse(detail: str, kind: str = "invalid") -> ValidationFailed:
        return ValidationFailed(detail, code=f"{code_prefix}_{kind}", field=field)
    return refuse


def _ascii_host(host: str, refuse) -> str:  # noqa: ANN001
    """The host as it goes on the wire: IP literals as they are, names IDNA-encoded (UTS #46)."""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    try:
        encoded = idna.encode(host, uts46=True).decode("ascii") if not host.isascii() else host.lower()
    except idna.IDNAError as exc:
        raise refuse(f"the host is not a valid internationalized domain name: {exc}") from None
    labels = encoded.rstrip(".").split(".")
    if len(encoded) > 253 or not all(_LABEL.match(label) for label in labels):
        raise refuse("the host is not a valid domain name")
    return encoded


def check_url(url: str, *, allow_private: bool, field: str = "url", code_prefix: str = "url",
              allow_query: bool = True, max_length: int | None = None) -> str:
    """What can be checked without the network. Returns the URL with its host IDNA-encoded.

    Errors are 422 on ``field`` with codes ``<code_prefix>_invalid``, ``_not_https`` and ``_forbidden``;
    a URL longer than ``max_length`` (its column) once encoded is ``string_too_long``, like any text.
    """
    refuse = _refuser(field, code_prefix)
    # urlsplit silently drops tabs and newlines: refuse them (and anything else invisible) first.
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise refuse("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise refuse(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise refuse("must be an absolute https:// URL")
    if parts.scheme == "http" and not allow_private:
        raise refuse("must use https", "not_https")
    if parts.username is not None or parts.password is not None:
        raise refuse("must not carry credentials (user:password@)")
    if parts.fragment or url.endswith("#"):
        raise refuse("must not have a #fragment")
    if not allow_query and (parts.query or "?" in url):
        raise refuse("must not have a ?query: it is a base URL that paths are appended to")
    if port == 0:
        raise refuse("port 0 is not a valid port")
    host = _ascii_host(parts.hostname, refuse)
    if not (parts.path + parts.query).isascii():
        raise refuse("the path and query must be ASCII (percent-encode other characters)")
    if not allow_private:
        if host.rstrip(".") in _LOCAL_NAMES or host.rstrip(".").endswith(".localhost"):
            raise refuse("must not point at this machine", "forbidden")
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None and not address_allowed(str(literal)):
            raise refuse("must not point at a private, loopback, link-local or metadata address", "forbidden")
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{port}"
    checked = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    # An IDNA-encoded host is longer than its Unicode form: a URL that fit its bound as sent may not fit
    # its column as stored (a database error on PostgreSQL).
    if max_length is not None and len(checked) > max_length:
        detail = f"String should have at most {max_length} characters once its host is IDNA-encoded"
        raise ValidationFailed(f"{field}: {detail}", field=field, errors=[FieldError(field, "string_too_long", detail)])
    return checked


def refused(url: str, *, allow_private: bool, allow_query: bool = True) -> str | None:
    """Why a saved URL may not be called (None: it may), by ``check_url``'s rules. Called before every
    request with a saved URL: rows saved before a rule existed (plain http, a device URL's query, user
    info) fail closed instead of sending a token where save time would refuse it now."""
    try:
        check_url(url, allow_private=allow_private, allow_query=allow_query)
    except ValidationFailed as exc:
        return exc.detail
    return None


class VettedUrl(str):
    """A URL ``vet_url`` accepted, and the rules it was vetted under.

    The save-time DNS lookup takes up to ``SAVE_RESOLVE_TIMEOUT``: an API route vets the URL before the
    request's transaction starts (a lock or a pooled connection must not wait for DNS) and hands the
    service this type; the service's own ``vet_url`` call then returns it as it is, and other callers
    (CLI, dashboard) are vetted there. Vetted under other rules (a webhook URL may keep a query, a
    device URL may not), it is vetted again."""

    rules: tuple

    def __new__(cls, url: str, rules: tuple) -> "VettedUrl":
        vetted = super().__new__(cls, url)
        vetted.rules = rules
        return vetted


async def _resolve(host: str, port: int, timeout: float | None = SAVE_RESOLVE_TIMEOUT) -> list[str]:
    """Every address ``host`` resolves to, once each, in the resolver's order."""
    infos = await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM),
                                   timeout)
    return list(dict.fromkeys(info[4][0] for info in infos))


def _forbidden(addresses: list[str]) -> list[str]:
    # One bad answer condemns the name: a mixed answer is how DNS-rebinding attacks start.
    return [address for address in addresses if not address_allowed(address)]


async def vet_url(url: str, *, allow_private: bool, field: str = "url", code_prefix: str = "url",
                  allow_query: bool = True, max_length: int | None = None) -> VettedUrl:
    """``check_url``, then resolve the host and refuse it if any address it resolves to is forbidden.

    A name that does not resolve (yet) is accepted: connect time checks every address again anyway.
    """
    rules = (allow_private, field, code_prefix, allow_query, max_length)
    if isinstance(url, VettedUrl) and url.rules == rules:
        return url
    checked = check_url(url, allow_private=allow_private, field=field, code_prefix=code_prefix,
                        allow_query=allow_query, max_length=max_length)
    if allow_private:
        return VettedUrl(checked, rules)
    parts = urlsplit(checked)
    try:
        addresses = await _resolve(parts.hostname, parts.port or 443)
    except (OSError, asyncio.TimeoutError):
        return VettedUrl(checked, rules)
    if _forbidden(addresses):
        raise _refuser(field, code_prefix)(
            "the host resolves to a private, loopback, link-local or metadata address", "forbidden")
    return VettedUrl(checked, rules)


def check_header_value(value: str, *, field: str, code: str) -> str:
    """A secret that becomes a header value (a bearer token...): visible ASCII only, so no CR/LF to
    inject headers and nothing that fails to encode at every delivery, forever."""
    if not _VISIBLE_ASCII.match(value):
        raise ValidationFailed("must be visible ASCII characters only (no spaces, line breaks or accents)",
                               code=code, field=field)
    return value


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks every address, then connects to a checked address (see the module's docstring)."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable | None = None) -> httpcore.AsyncNetworkStream:
        addresses = await _resolve(host, port, timeout)
        if not self.allow_private and (bad := _forbidden(addresses)):
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
        raise ForbiddenAddress("unix sockets are not outbound targets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_client(allow_private: bool, *, limits: httpx.Limits,
                   ssl_context: ssl.SSLContext | None = None) -> httpx.AsyncClient:
    """An httpx client whose every connection goes through ``GuardedBackend``.

    ``ssl_context``: for the few fixed hosts that need one of their own (ARCA's, whose DH parameters
    modern OpenSSL refuses at its default security level); certificates are verified all the same.

    No redirects are followed (httpx's default) and the environment's proxy settings are ignored:
    a proxy would make the connection, and resolve the name, where this guard cannot see it.
    """
    transport = httpx.AsyncHTTPTransport(limits=limits)
    # httpx takes no network backend, but its transport is a thin shell around this httpcore pool:
    # the same pool, built with the guarded backend (the options mirror AsyncHTTPTransport's own).
    transport._pool = httpcore.AsyncConnectionPool(  # noqa: SLF001
        ssl_context=ssl_context or httpx.create_ssl_context(), max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
        http1=True, http2=False, network_backend=GuardedBackend(allow_private))
    return httpx.AsyncClient(transport=transport, trust_env=False, follow_redirects=False)
