"""The sync agent against the e-MCF simulator (a real HTTP server), on SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from sqlalchemy import select

from stalela.app import create_app
from stalela.outbox.dispatcher import Dispatcher
from stalela.outbox.models import OutboxEvent
from stalela.tenancy.context import bind_platform
from tests.conftest import OPERATOR_TOKEN, make_settings
from tests.support.invoices import sample_invoice
from tests.support.simulator import start_simulator


@pytest.fixture(scope="module")
def sim():
    simulator = start_simulator({"SIMA": "token-a", "SIMB": "token-b"})
    yield simulator
    simulator.stop()


@pytest.fixture
async def world(fresh_database_url, tmp_path, sim):
    sim.faults()  # no faults unless a test asks
    sim.reset()
    settings = make_settings(fresh_database_url, tmp_path, outbox_backoff_base_seconds=0.01,
                             outbox_backoff_cap_seconds=0.05, outbox_poll_seconds=0.05, authority_timeout_seconds=1.0,
                             webhooks_allow_private=True)  # the simulator listens on loopback
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            r = await client.post("/v1/tenants", json={"name": "Sync SARL", "tax_id": "S100"},
                                  headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
            headers = {"Authorization": f"Bearer {r.json()['api_key']}"}
            outlet = (await client.post("/v1/outlets", json={"code": f"SY{uuid.uuid4().hex[:6]}", "name": "Sync"}, headers=headers)).json()
            yield {"app": app, "client": client, "headers": headers, "outlet": outlet, "sim": sim,
                   "dispatcher": Dispatcher(app.state.db, settings)}


async def drain(world, rounds=200):
    idle = 0
    for _ in range(rounds):
        if await world["dispatcher"].run_once() == 0:
            idle += 1
            if idle > 3:
                return
            await asyncio.sleep(0.06)
        else:
            idle = 0


async def register(world, token="token-a", nim="SIMA"):
    r = await world["client"].put(f"/v1/outlets/{world['outlet']['id']}/authority-device",
                                  json={"nim": nim, "base_url": world["sim"].url, "token": token},
                                  headers=world["headers"])
    assert r.status_code == 200, r.text
    return r.json()


async def seal(world, **overrides):
    r = await world["client"].post("/v1/invoices", json=sample_invoice(world["outlet"]["id"], **overrides),
                                   headers=world["headers"])
    assert r.status_code == 201, r.text
    assert r.json()["sync"]["status"] == "pending"
    return r.json()


async def sync_of(world, invoice):
    return (await world["client"].get(f"/v1/invoices/{invoice['id']}", headers=world["headers"])).json()["sync"]


def confirmed_rns(world):
    return [c["rn"] for c in world["sim"].records()["confirmed"]]


async def test_sealed_invoices_are_acknowledged(world):
    device = await register(world)
    assert device["token"] == "[stored encrypted]" and "token-a" not in str(device)
    invoices = [await seal(world) for _ in range(3)]
    await drain(world)
    for inv in invoices:
        sync = await sync_of(world, inv)
        assert sync["status"] == "acknowledged" and len(sync["authority_code"]) == 24, sync
        assert sync["counters"] and sync["acknowledged_at"]
        assert confirmed_rns(world).count(inv["fiscal_number"]) == 1
    status = (await world["client"].get("/v1/sync/status", headers=world["headers"])).json()["outlets"]
    assert status[0]["acknowledged"] == 3 and status[0]["pending"] == 0 and status[0]["last_success_at"]
    page = (await world["client"].get(f"/verify/{invoices[0]['id']}", headers={"Accept": "application/json"})).json()
    assert page["authority"]["status"] == "acknowledged"


async def test_without_a_device_invoices_wait_visibly_then_go(world):
    inv = await seal(world)
    await drain(world)
    sync = await sync_of(world, inv)
    assert sync["status"] == "pending" and sync["error"]["code"] == "no_device"
    status = (await world["client"].get("/v1/sync/status", headers=world["headers"])).json()["outlets"][0]
    assert status["pending"] == 1 and status["device"] == "none" and status["oldest_pending_seconds"] >= 0
    await register(world)
    await drain(world)
    assert (await sync_of(world, inv))["status"] == "acknowledged"


async def test_a_totals_mismatch_is_never_confirmed(world):
    await register(world)
    world["sim"].faults(mismatch_rate=1.0)
    inv = await seal(world)
    await drain(world)
    sync = await sync_of(world, inv)
    assert sync["status"] == "failed" and sync["error"]["code"] == "totals_mismatch", sync
    assert inv["fiscal_number"] not in confirmed_rns(world)
    async with world["app"].state.db.transaction(readonly=True) as s:
        await bind_platform(s)
        topics = (await s.execute(select(OutboxEvent.topic))).scalars().all()
    assert "invoice.sync_failed" in topics


async def test_an_invalid_token_stops_the_device_until_fixed(world):
    await register(world, token="wrong-token")
    first, second = await seal(world), await seal(world)
    await drain(world)
    device = (await world["client"].get(f"/v1/outlets/{world['outlet']['id']}/authority-device",
                                        headers=world["headers"])).json()
    assert device["status"] == "unauthorized"
    for inv in (first, second):
        assert (await sync_of(world, inv))["error"]["code"] == "device_unauthorized"
    async with world["app"].state.db.transaction(readonly=True) as s:
        await bind_platform(s)
        attempts = (await s.execute(select(OutboxEvent.attempts).where(OutboxEvent.topic == "invoice.sealed"))).all()
    assert max(a for (a,) in attempts) == 1  # no attempts burnt against a token that cannot work
    await register(world, token="token-a")
    await drain(world)
    assert [(await sync_of(world, i))["status"] for i in (first, second)] == ["acknowledged"] * 2


async def test_a_confirm_that_timed_out_after_taking_effect_is_not_repeated(world):
    await register(world)
    world["sim"].faults(timeout_after_confirm_rate=1.0, timeout_seconds=2.0)
    inv = await seal(world)
    await world["dispatcher"].run_once()  # the confirm takes effect, the answer never comes
    assert (await sync_of(world, inv))["status"] == "pending"
    assert confirmed_rns(world).count(inv["fiscal_number"]) == 1
    world["sim"].faults()
    await drain(world)
    assert (await sync_of(world, inv))["status"] == "acknowledged"
    records = world["sim"].records()
    assert confirmed_rns(world).count(inv["fiscal_number"]) == 1
    assert max(records["confirm_counts"].values()) == 1


async def test_transient_faults_are_retried_until_acknowledged(world):
    await register(world)
    world["sim"].faults(error_rate=0.3, drop_rate=0.1, seed=7)
    invoices = [await seal(world) for _ in range(10)]
    await drain(world, rounds=400)
    world["sim"].faults()
    await drain(world)
    assert [(await sync_of(world, i))["status"] for i in invoices] == ["acknowledged"] * 10
    rns = confirmed_rns(world)
    assert all(rns.count(i["fiscal_number"]) == 1 for i in invoices)


async def test_a_request_that_expired_before_its_confirm_is_created_again(world):
    await register(world)
    # Every call is slow and requests expire fast: the confirm arrives after its request died.
    world["sim"].faults(latency_ms=300, expiry_seconds=0.1)
    inv = await seal(world)
    await world["dispatcher"].run_once()
    sync = await sync_of(world, inv)
    assert sync["status"] == "pending", sync  # not failed: the invoice was simply never reported
    assert sync["error"]["code"] == "authority_request_expired"
    assert confirmed_rns(world) == []
    world["sim"].faults()
    await drain(world)
    assert (await sync_of(world, inv))["status"] == "acknowledged"
    assert confirmed_rns(world).count(inv["fiscal_number"]) == 1


async def test_a_create_whose_answer_was_lost_is_cancelled_then_made_again(world):
    await register(world)
    world["sim"].faults(drop_after_create_rate=1.0)
    inv = await seal(world)
    await world["dispatcher"].run_once()  # the DGI has the request; the agent never got its uid
    assert (await sync_of(world, inv))["status"] == "pending"
    lost = [p["uid"] for p in world["sim"].records()["pending"] if p["rn"] == inv["fiscal_number"]]
    assert len(lost) == 1
    world["sim"].faults()
    await drain(world)
    assert (await sync_of(world, inv))["status"] == "acknowledged"
    records = world["sim"].records()
    # The unknown request was cancelled (its totals were never checked), a new one confirmed once.
    assert lost[0] in [c["uid"] for c in records["cancelled"]]
    assert confirmed_rns(world).count(inv["fiscal_number"]) == 1
    assert all(c["uid"] != lost[0] for c in records["confirmed"])
