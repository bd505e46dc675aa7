"""The shared outbound-URL guard, without the domains: address forms, URL rules, and the connect-time
check against a real server on loopback."""
from __future__ import annotations

import asyncio

import httpx
import pytest

from stalela.errors import ValidationFailed
from stalela.kit import netguard


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "169.254.169.254", "0.0.0.0",
    "224.0.0.1", "240.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fd00:ec2::254", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:169.254.169.254", "64:ff9b::7f00:1", "2002:7f00:1::1", "2002:a9fe:a9fe::1",
    # IPv4-compatible (::/96), IPv4-translated (SIIT, ::ffff:0:0:0/96) and local-use NAT64 (RFC 8215) forms
    "::7f00:1", "::a00:1", "::a9fe:a9fe", "::ffff:0:7f00:1", "::ffff:0:a00:1", "64:ff9b:1::a00:1", "64:ff9b:1::101:101",
    "64:ff9b::a00:1", "64:ff9b::6440:1", "2002:a00:1::1", "2002:c0a8:101::1",
    # Teredo (2001::/32): the server (bits 32-63) and the obfuscated client (last 32 bits) are both reached
    "2001:0:7f00:1:0:0:fefe:fefe",  # server 127.0.0.1, client 1.1.1.1
    "2001:0:101:101:0:0:f5ff:fffe",  # server 1.1.1.1, client 10.0.0.1
    # IPv6 outside global unicast 2000::/3, or a special-purpose block inside it
    "fec0::1", "fc00::1", "fd12:3456::1", "100::1", "4000::1", "e000::1",
    "2001:db8::1", "2001:2::1", "3fff::1", "5f00::1",
    "192.0.0.8", "192.0.2.1", "198.18.0.1", "198.51.100.1", "203.0.113.1",
])
def test_non_public_addresses_are_refused_however_written(address):
    assert not netguard.address_allowed(address)


@pytest.mark.parametrize("address", [
    "1.1.1.1", "8.8.8.8", "2606:4700:4700::1111", "2a00:1450:4001::1", "::ffff:1.1.1.1", "::ffff:0:101:101",
    "64:ff9b::101:101", "2002:101:101::1", "2001:0:101:101:0:0:fefe:fefe",  # public IPv4 in every form
])
def test_public_addresses_pass(address):
    assert netguard.address_allowed(address)


def test_base_urls_refuse_queries_but_webhook_urls_may_keep_them():
    assert netguard.check_url("https://x.example/h?a=1", allow_private=False) == "https://x.example/h?a=1"
    with pytest.raises(ValidationFailed) as refused:
        netguard.check_url("https://x.example/api?x=", allow_private=False, field="base_url",
                           code_prefix="device_url", allow_query=False)
    assert (refused.value.code, refused.value.field) == ("device_url_invalid", "base_url")


def test_the_development_setting_allows_loopback_and_http():
    assert netguard.check_url("http://127.0.0.1:8080/x", allow_private=True) == "http://127.0.0.1:8080/x"
    with pytest.raises(ValidationFailed):
        netguard.check_url("http://127.0.0.1:8080/x", allow_private=False)


@pytest.mark.parametrize("value", ["tök", "a\r\nb", "a b", "", "\x00"])
def test_header_values_must_be_visible_ascii(value):
    with pytest.raises(ValidationFailed):
        netguard.check_header_value(value, field="token", code="device_token_invalid")


async def test_the_guarded_client_refuses_loopback_at_connect_time():
    """What DNS rebinding would produce: a name checked at save time now resolving to this machine.
    The connection is refused before any byte, so no credential leaves; allowed, it goes through."""
    connections = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    limits = httpx.Limits(max_connections=2)
    try:
        async with netguard.guarded_client(False, limits=limits) as strict:
            with pytest.raises(httpx.ConnectError, match="non-public address"):
                await strict.get(f"http://localhost:{port}/", headers={"Authorization": "Bearer secret"})
        assert connections == []
        async with netguard.guarded_client(True, limits=limits) as lax:
            assert (await lax.get(f"http://localhost:{port}/")).text == "ok"
        assert connections == [1]
    finally:
        server.close()
        await server.wait_closed()
