"""What Stalela meters by itself, on SQLite and PostgreSQL: sealed invoices (a batch outbox handler), API
calls (counted in memory, flushed), stored bytes (hourly samples); and the tenant_resource_usage metric."""
from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime, timezone

import httpx
import pytest
from sqlalchemy import select

from stalela.app import create_app
from stalela.billing import usage_service, usage_tasks
from stalela.billing.usage_models import UsageEvent
from stalela.outbox.dispatcher import Dispatcher
from stalela.outbox.registry import RetryLater, handles_batch
from stalela.outbox.service import enqueue
from stalela.tenancy.context import bind_platform, bind_tenant
from tests.conftest import OPERATOR_TOKEN, make_settings
from tests.support.invoices import sample_invoice

METRICS = {"Authorization": "Bearer usage-metrics-token"}


@pytest.fixture
async def world(fresh_database_url, tmp_path):
    """An app on a database of its own: the dispatcher here drains every pending outbox event."""
    settings = make_settings(fresh_database_url, tmp_path, metrics_token="usage-metrics-token",
                             metrics_cache_seconds=0, usage_flush_seconds=3600, outbox_poll_seconds=0.01)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            r = await client.post("/v1/tenants", json={"name": "Meter SARL", "tax_id": "U1"},
                                  headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
            tenant, key = r.json()["tenant"], {"Authorization": f"Bearer {r.json()['api_key']}"}
            outlet = (await client.post("/v1/outlets", json={"code": "U1", "name": "U"}, headers=key)).json()
            yield {"app": app, "client": client, "tenant": tenant, "key": key, "outlet": outlet, "settings": settings}


async def events(app, tenant_id, resource=None):
    async with app.state.db.transaction(readonly=True) as session:
        await bind_tenant(session, tenant_id)
        stmt = select(UsageEvent).order_by(UsageEvent.event_id)
        if resource:
            stmt = stmt.where(UsageEvent.resource == resource)
        return list((await session.execute(stmt)).scalars())


async def drain(app, settings):
    dispatcher = Dispatcher(app.state.db, settings)
    for _ in range(20):
        if await dispatcher.run_once() == 0:
            break


async def test_sealed_invoices_are_metered_once_off_the_seal_path(world):
    app, c, key = world["app"], world["client"], world["key"]
    ids = []
    for _ in range(3):
        r = await c.post("/v1/invoices", json=sample_invoice(world["outlet"]["id"]), headers=key)
        assert r.status_code == 201
        ids.append(r.json()["id"])
    assert await events(app, world["tenant"]["id"], "invoices_sealed") == []  # not in the seal's transaction
    await drain(app, world["settings"])
    metered = await events(app, world["tenant"]["id"], "invoices_sealed")
    assert sorted(e.event_id for e in metered) == sorted(f"stalela:invoice:{i}" for i in ids)
    assert {(e.quantity_units, e.source) for e in metered} == {(1, "metering")}
    # A redelivery (at least once) records nothing new; the tenant cannot void what Stalela metered.
    from stalela.outbox.registry import Event, HandlerContext
    again = [Event(world["tenant"]["id"], f"evt_{i}", "invoice.sealed", {"invoice_id": i}, 2) for i in ids]
    await usage_tasks.meter_sealed_invoices(HandlerContext(app.state.db, world["settings"]), again)
    assert len(await events(app, world["tenant"]["id"], "invoices_sealed")) == 3
    r = await c.post(f"/v1/usage/events/stalela:invoice:{ids[0]}/void", headers=key)
    assert (r.status_code, r.json()["code"]) == (409, "usage_event_metered")


calls: list[int] = []


@handles_batch("test.usage_batch")
async def _batch(ctx, events):
    calls.append(len(events))
    if any(e.payload.get("later") for e in events) and len(calls) == 1:
        raise RetryLater("not yet", 0)


async def test_a_batch_handler_sees_the_claimed_events_together_and_fails_them_together(world):
    app = world["app"]
    calls.clear()
    async with app.state.db.transaction() as session:
        await bind_tenant(session, world["tenant"]["id"])
        for n in range(5):
            enqueue(session, world["tenant"]["id"], "test.usage_batch", {"n": n, "later": n == 0})
    await drain(app, world["settings"])
    assert calls[0] == 5 and sum(calls[1:]) == 5  # retried together (RetryLater), then done


async def test_api_calls_are_counted_in_memory_and_flushed_once(world, monkeypatch):
    app, c, key, tenant_id = world["app"], world["client"], world["key"], world["tenant"]["id"]
    await events(app, tenant_id)
    for _ in range(4):
        assert (await c.get("/v1/outlets", headers=key)).status_code == 200
    assert (await c.get("/v1/outlets", headers={"Authorization": "Bearer sk_nope"})).status_code == 401
    counter = app.state.api_calls
    assert counter.counts[tenant_id] == 5  # the outlet's creation too

    async def down(*_a, **_k):
        raise ConnectionError("database away")

    monkeypatch.setattr(usage_service, "record_metered", down)
    with pytest.raises(ConnectionError):
        await counter.flush(app.state.db)
    monkeypatch.undo()
    await c.get("/v1/outlets", headers=key)  # counted into the next flush
    assert await counter.flush(app.state.db) == 2  # the failed flush's events (same ids), then the new ones
    assert await counter.flush(app.state.db) == 0
    recorded = await events(app, tenant_id, "api_calls")
    assert sorted(e.quantity_units for e in recorded) == [1, 5]
    assert all(e.event_id.startswith("stalela:api:") for e in recorded)


async def test_storage_is_sampled_hourly_from_what_the_tenant_stores(world):
    app, c, key, tenant_id = world["app"], world["client"], world["key"], world["tenant"]["id"]
    assert (await c.post("/v1/invoices", json=sample_invoice(world["outlet"]["id"]), headers=key)).status_code == 201
    hour = datetime(2026, 3, 10, 9, 30, tzinfo=timezone.utc)
    with usage_service.clock.use(lambda: hour):
        assert await usage_tasks.sample_storage(app.state.db, [tenant_id]) == 1
        assert await usage_tasks.sample_storage(app.state.db, [tenant_id]) == 0  # same hour: nothing new
    (sample,) = await events(app, tenant_id, "storage_bytes")
    assert sample.event_id == "stalela:storage:2026-03-10T09" and sample.quantity_units > 500


@pytest.mark.parametrize("labels", [True, False])
async def test_tenant_resource_usage_is_this_months_usage(world, labels):
    from stalela.observability import metrics
    from tests.observability.test_metrics import scrape_text, value

    app, c, key, tenant_id = world["app"], world["client"], world["key"], world["tenant"]["id"]
    now = datetime.now(timezone.utc)
    r = await c.post("/v1/usage/events", json={"event_id": f"m-{uuid.uuid4().hex}", "resource": "network_bytes",
                                               "quantity": "1234", "occurred_at": now.isoformat()}, headers=key)
    assert r.status_code == 201
    await usage_tasks.aggregate_all(app.state.db, [tenant_id])
    metrics.configure(tenant_labels=labels)
    try:
        scraped = scrape_text((await c.get("/metrics", headers=METRICS)).text)
    finally:
        metrics.configure(tenant_labels=True)
    label = tenant_id if labels else "*"
    assert value(scraped, "tenant_resource_usage", tenant_id=label, resource="network_bytes") >= 1234
    if not labels:
        assert value(scraped, "tenant_resource_usage", tenant_id=tenant_id, resource="network_bytes") is None
