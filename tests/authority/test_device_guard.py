"""The DGI device URL goes through the shared outbound-URL guard: at save time and at connect time.

And what the sync agent writes on an invoice when the authority cannot be reached says nothing of
the network (refused and timed out read the same), so a device URL is no port scanner.
"""
from __future__ import annotations

import socket
import uuid
from contextlib import asynccontextmanager

import httpx
import pytest
from sqlalchemy import update

from stalela.app import create_app
from stalela.authority.models import AuthorityDevice
from stalela.kit import netguard
from stalela.outbox.dispatcher import Dispatcher
from stalela.tenancy.context import bind_tenant
from tests.authority.test_sync import drain, seal, sync_of
from tests.conftest import OPERATOR_TOKEN, make_settings
from tests.support.simulator import start_simulator


@pytest.fixture(scope="module")
def sim():
    simulator = start_simulator({"SIMA": "token-a"})
    yield simulator
    simulator.stop()


@asynccontextmanager
async def _world(settings):
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            r = await client.post("/v1/tenants", json={"name": "Guard SARL", "tax_id": "G100"},
                                  headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
            headers = {"Authorization": f"Bearer {r.json()['api_key']}"}
            outlet = (await client.post("/v1/outlets", json={"code": f"GD{uuid.uuid4().hex[:6]}", "name": "Guard"},
                                        headers=headers)).json()
            yield {"app": app, "client": client, "headers": headers, "outlet": outlet,
                   "dispatcher": Dispatcher(app.state.db, settings)}


@pytest.fixture
async def strict(fresh_database_url, tmp_path):
    """The production policy: no private addresses, https only."""
    async with _world(make_settings(fresh_database_url, tmp_path)) as world:
        yield world


async def put_device(world, base_url, token="token-a"):
    return await world["client"].put(f"/v1/outlets/{world['outlet']['id']}/authority-device",
                                     json={"nim": "SIMA", "base_url": base_url, "token": token},
                                     headers=world["headers"])


@pytest.mark.parametrize("url, code", [
    ("http://127.0.0.1:8080", "device_url_not_https"),
    ("https://127.0.0.1", "device_url_forbidden"),
    ("https://127.1.2.3:8443/api", "device_url_forbidden"),
    ("https://[::1]", "device_url_forbidden"),
    ("https://[::ffff:127.0.0.1]", "device_url_forbidden"),
    ("https://[::ffff:a9fe:a9fe]", "device_url_forbidden"),  # 169.254.169.254, IPv4-mapped
    ("https://localhost:9000", "device_url_forbidden"),
    ("https://169.254.169.254/latest", "device_url_forbidden"),
    ("https://[fd00:ec2::254]", "device_url_forbidden"),
    ("https://[::7f00:1]", "device_url_forbidden"),  # IPv4-compatible 127.0.0.1
    ("https://[::ffff:0:a00:1]", "device_url_forbidden"),  # IPv4-translated (SIIT) 10.0.0.1
    ("https://[64:ff9b:1::a00:1]", "device_url_forbidden"),  # local-use NAT64
    ("https://[fec0::1]", "device_url_forbidden"),  # site-local
    ("https://10.0.0.7", "device_url_forbidden"),
    ("https://0.0.0.0", "device_url_forbidden"),
    ("https://224.0.0.1", "device_url_forbidden"),
    ("https://240.0.0.1", "device_url_forbidden"),
    ("https://dgi.example.cd/?x=", "device_url_invalid"),  # the agent appends paths: a query would choose them
    ("https://dgi.example.cd/api?", "device_url_invalid"),
    ("https://user:pw@dgi.example.cd", "device_url_invalid"),
    ("https://dgi.example.cd/#frag", "device_url_invalid"),
])
async def test_forbidden_device_urls_are_422_on_base_url(strict, url, code):
    r = await put_device(strict, url)
    assert r.status_code == 422, r.text
    assert (r.json()["code"], r.json()["field"]) == (code, "base_url"), r.json()


async def test_a_name_resolving_to_this_machine_is_refused_at_save(strict):
    name = socket.gethostname()
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(name, 443)}
    except OSError:
        pytest.skip(f"{name} does not resolve here")
    if not any(a.startswith("127.") or a == "::1" for a in addresses):
        pytest.skip(f"{name} does not resolve to loopback here ({addresses})")
    r = await put_device(strict, f"https://{name}:8443")
    assert r.status_code == 422 and r.json()["code"] == "device_url_forbidden", r.text


async def test_a_public_https_url_is_saved_with_its_host_idna_encoded(strict):
    r = await put_device(strict, "https://dgi.example.cd/emcf")
    assert r.status_code == 200, r.text
    assert r.json()["base_url"] == "https://dgi.example.cd/emcf"
    r = await put_device(strict, "https://bücher.example/emcf")
    assert r.status_code == 200, r.text
    assert r.json()["base_url"] == "https://xn--bcher-kva.example/emcf"


@pytest.mark.parametrize("token", ["tökén", "token\r\nX-Injected: 1", "two words", "tab\tbed"])
async def test_a_token_that_cannot_be_a_header_is_422_at_save(strict, token):
    r = await put_device(strict, "https://dgi.example.cd", token=token)
    assert r.status_code == 422, r.text
    assert (r.json()["code"], r.json()["field"]) == ("device_token_invalid", "token")
    device = await strict["client"].get(f"/v1/outlets/{strict['outlet']['id']}/authority-device",
                                        headers=strict["headers"])
    assert device.status_code == 404  # nothing saved: nothing will ever try to deliver it


async def test_the_agent_checks_the_address_again_at_connect_time(fresh_database_url, tmp_path, sim):
    """A URL saved when its name was public may resolve to a private address later (DNS rebinding):
    the agent's connection is refused, the token never leaves, and the invoice says nothing of why."""
    settings = make_settings(fresh_database_url, tmp_path, webhooks_allow_private=True, authority_timeout_seconds=1.0,
                             outbox_backoff_base_seconds=0.01, outbox_backoff_cap_seconds=0.05)
    async with _world(settings) as world:  # saved under the development setting: a loopback URL
        assert (await put_device(world, sim.url)).status_code == 200
        invoice = await seal(world)
        before = sim.records()
        # A name that passes the URL rules and resolves to 127.0.0.1 (its integer form; the API's URL
        # parser would store it as 127.0.0.1, so put directly): https, as plain http would now be
        # refused before any connection (test below).
        port = sim.url.rsplit(":", 1)[1].strip("/")
        async with world["app"].state.db.transaction() as session:
            await bind_tenant(session, world["outlet"]["tenant_id"])
            await session.execute(update(AuthorityDevice).values(base_url=f"https://2130706433:{port}"))
        # The same database, now under the production policy.
        world["dispatcher"] = Dispatcher(world["app"].state.db, settings.model_copy(update={"webhooks_allow_private": False}))
        await drain(world, rounds=8)
        sync = await sync_of(world, invoice)
    after = sim.records()
    assert {k: after[k] for k in ("confirmed", "pending", "cancelled")} == \
        {k: before[k] for k in ("confirmed", "pending", "cancelled")}  # not one request reached it
    assert sync["status"] == "pending" and sync["error"]["code"] == "authority_unreachable", sync
    assert "127.0.0.1" not in sync["error"]["detail"] and "resolves" not in sync["error"]["detail"]


async def test_refused_and_silent_ports_read_the_same_on_the_invoice(fresh_database_url, tmp_path):
    """Closed port (connection refused) and open-but-silent port (timeout): one text, no host, no port."""
    settings = make_settings(fresh_database_url, tmp_path, webhooks_allow_private=True, authority_timeout_seconds=0.5,
                             outbox_backoff_base_seconds=0.01, outbox_backoff_cap_seconds=0.05)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts connections (the kernel does), never answers
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    ports = [closed.getsockname()[1], silent.getsockname()[1]]
    errors = []
    try:
        async with _world(settings) as world:
            for port in ports:
                assert (await put_device(world, f"http://127.0.0.1:{port}")).status_code == 200
                invoice = await seal(world)
                await drain(world, rounds=8)
                errors.append((await sync_of(world, invoice))["error"])
    finally:
        silent.close()
        closed.close()
    assert errors[0] == errors[1], errors
    assert errors[0]["code"] == "authority_unreachable"
    text = errors[0]["detail"].lower()
    for leak in ("refused", "timeout", "timed out", "127.0.0.1", str(ports[0]), str(ports[1]), "connecterror"):
        assert leak not in text, text


async def test_the_dns_lookup_runs_before_the_request_holds_a_connection(strict, monkeypatch):
    """The save-time lookup may take 3 s: it runs before the request's transaction takes SQLite's write
    lock or a pooled PostgreSQL connection, and once (the service trusts the vetted URL)."""
    held = []

    async def resolve(host: str, port: int) -> list[str]:  # the network's answer; the database is real
        held.append(strict["app"].state.db.engine.pool.checkedout())
        return ["93.184.215.14"]

    monkeypatch.setattr(netguard, "_resolve", resolve)
    r = await put_device(strict, "https://dgi.example.cd/emcf/")
    assert r.status_code == 200 and r.json()["base_url"] == "https://dgi.example.cd/emcf", r.text
    assert held == [0]


async def test_a_device_url_saved_before_the_rules_fails_closed(fresh_database_url, tmp_path, sim):
    """A row saved before the guard (put there directly, as an old database has it) with a ?query that
    would choose the path: the agent sends nothing, the invoice says why, and registering again resyncs."""
    settings = make_settings(fresh_database_url, tmp_path, webhooks_allow_private=True, authority_timeout_seconds=1.0,
                             outbox_backoff_base_seconds=0.01, outbox_backoff_cap_seconds=0.05)
    async with _world(settings) as world:
        assert (await put_device(world, sim.url)).status_code == 200
        async with world["app"].state.db.transaction() as session:
            await bind_tenant(session, world["outlet"]["tenant_id"])
            await session.execute(update(AuthorityDevice).values(base_url=f"{sim.url}/?x="))
        before = sim.records()
        invoice = await seal(world)
        await drain(world, rounds=8)
        sync = await sync_of(world, invoice)
        assert sim.records() == before  # not one request reached the authority
        assert sync["status"] == "pending" and sync["error"]["code"] == "device_url_refused", sync
        assert "query" in sync["error"]["detail"] and "register the device again" in sync["error"]["detail"]
        assert (await put_device(world, sim.url)).status_code == 200
        await drain(world)
        assert (await sync_of(world, invoice))["status"] == "acknowledged"
