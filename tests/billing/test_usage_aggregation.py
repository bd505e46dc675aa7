"""Daily aggregation on SQLite and PostgreSQL: idempotent re-runs, incremental refresh, gauges' carry,
agreement of the read path with the table, period usage and its digest."""
from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select

from stalela.billing import usage_service
from stalela.billing.usage_models import UsageDaily
from stalela.billing.usage_tasks import aggregate_all
from stalela.tenancy.context import bind_tenant

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def frozen():
    with usage_service.clock.use(lambda: NOW):
        yield


def at(day: int, hour: int = 0, minute: int = 0) -> str:
    return datetime(2026, 3, day, hour, minute, tzinfo=timezone.utc).isoformat()


async def post(client, key, events):
    r = await client.post("/v1/usage/events/batch", json={"events": events}, headers=key)
    assert r.status_code == 200 and all(i["status"] == 201 for i in r.json()["data"]), r.text


async def table(app, tenant_id):
    async with app.state.db.transaction(readonly=True) as session:
        await bind_tenant(session, tenant_id)
        rows = (await session.execute(select(UsageDaily).order_by(UsageDaily.resource, UsageDaily.day))).scalars()
        return [(r.resource, r.day, r.quantity_units, r.event_count, r.events_digest) for r in rows]


async def read(app, tenant_id, fn, *args):
    async with app.state.db.transaction(readonly=True) as session:
        await bind_tenant(session, tenant_id)
        return await fn(session, tenant_id, *args)


async def test_counters_sum_with_voids_and_reruns_write_identical_rows(app, client, new_tenant):
    tenant, key = await new_tenant()
    await post(client, key, [
        {"event_id": "a", "resource": "api_calls", "quantity": "5", "occurred_at": at(8, 10)},
        {"event_id": "b", "resource": "api_calls", "quantity": "7", "occurred_at": at(8, 23, 59)},
        {"event_id": "c", "resource": "api_calls", "quantity": "2", "occurred_at": at(9, 0)},
        {"event_id": "cpu", "resource": "cpu_seconds", "quantity": "0.5", "occurred_at": at(9, 1)},
    ])
    assert (await client.post("/v1/usage/events/b/void", headers=key)).status_code == 201
    # The read path agrees before any aggregation ran...
    before = await read(app, tenant["id"], usage_service.daily, None, date(2026, 3, 1), date(2026, 4, 1))
    assert await aggregate_all(app.state.db, [tenant["id"]]) == {tenant["id"]: 3}
    rows = await table(app, tenant["id"])
    assert [(r, d, q, n) for r, d, q, n, _ in rows] == [
        ("api_calls", date(2026, 3, 8), 5, 3), ("api_calls", date(2026, 3, 9), 2, 1),
        ("cpu_seconds", date(2026, 3, 9), 500000, 1)]
    assert rows[0][4] == hashlib.sha256(b"a\nb\nvoid:b\n").hexdigest()
    # ... and after: the same figures.
    after = await read(app, tenant["id"], usage_service.daily, None, date(2026, 3, 1), date(2026, 4, 1))
    assert before == after and after[2].quantity == Decimal("0.500000")
    # A re-run (incremental: nothing new; or a full range) writes the same rows.
    await aggregate_all(app.state.db, [tenant["id"]])
    await aggregate_all(app.state.db, [tenant["id"]], date(2026, 3, 1), date(2026, 4, 1))
    assert await table(app, tenant["id"]) == rows


async def test_incremental_run_picks_up_late_events_and_voids(app, client, new_tenant):
    tenant, key = await new_tenant()
    await post(client, key, [{"event_id": "x", "resource": "network_bytes", "quantity": "100", "occurred_at": at(2)}])
    await aggregate_all(app.state.db, [tenant["id"]])
    later = NOW + timedelta(hours=1)
    with usage_service.clock.use(lambda: later):
        await post(client, key, [{"event_id": "y", "resource": "network_bytes", "quantity": "50",
                                  "occurred_at": at(2, 5)}])
        assert (await client.post("/v1/usage/events/x/void", headers=key)).status_code == 201
        await aggregate_all(app.state.db, [tenant["id"]])
    rows = await table(app, tenant["id"])
    assert [(r, d, q, n) for r, d, q, n, _ in rows] == [("network_bytes", date(2026, 3, 2), 50, 3)]


async def test_gauge_is_a_time_weighted_average_that_carries(app, client, new_tenant):
    tenant, key = await new_tenant()
    await post(client, key, [
        {"event_id": "s1", "resource": "storage_bytes", "quantity": "1000", "occurred_at": at(7, 12)},
        {"event_id": "s2", "resource": "storage_bytes", "quantity": "3000", "occurred_at": at(8, 6)},
        {"event_id": "s3", "resource": "storage_bytes", "quantity": "999", "occurred_at": at(8, 18)},
    ])
    assert (await client.post("/v1/usage/events/s3/void", headers=key)).status_code == 201
    days = await read(app, tenant["id"], usage_service.daily, "storage_bytes", date(2026, 3, 6), date(2026, 3, 12))
    # 7th: nothing until noon, then 1000 (500); 8th: 1000 for 6 h, 3000 for 18 h (2500; s3 voided);
    # 9th and 10th (today): 3000 carried; the 11th is tomorrow: no row yet.
    assert [(d.day.day, d.quantity, d.event_count) for d in days] == [
        (7, Decimal(500), 1), (8, Decimal(2500), 3), (9, Decimal(3000), 0), (10, Decimal(3000), 0)]
    await aggregate_all(app.state.db, [tenant["id"]])
    assert [(d, q) for _, d, q, _, _ in await table(app, tenant["id"])] == [
        (date(2026, 3, d), q) for d, q in ((7, 500), (8, 2500), (9, 3000), (10, 3000))]
    # The next day, with no new sample, the aggregation carries the value into it.
    with usage_service.clock.use(lambda: NOW + timedelta(days=1)):
        await aggregate_all(app.state.db, [tenant["id"]])
        assert (await table(app, tenant["id"]))[-1][1:3] == (date(2026, 3, 11), 3000)
        # Nothing written since that run: the gauge's days stand (a plan with no changed day).
        await aggregate_all(app.state.db, [tenant["id"]])
        assert (await table(app, tenant["id"]))[-1][1:3] == (date(2026, 3, 11), 3000)
        # A late sample on the 9th changes the 9th and every day after it.
        await post(client, key, [{"event_id": "s4", "resource": "storage_bytes", "quantity": "0",
                                  "occurred_at": at(9, 0)}])
        await aggregate_all(app.state.db, [tenant["id"]])
        assert [q for _, d, q, _, _ in await table(app, tenant["id"]) if d.day >= 9] == [0, 0, 0]


async def test_period_usage_totals_and_digest(app, client, new_tenant):
    tenant, key = await new_tenant()
    await post(client, key, [
        {"event_id": f"e{i}", "resource": "invoices_sealed" if i % 2 else "api_calls", "quantity": str(i),
         "occurred_at": at(1 + i)} for i in range(6)])
    await client.post("/v1/usage/events/e3/void", headers=key)
    await aggregate_all(app.state.db, [tenant["id"]])
    usage = await read(app, tenant["id"], usage_service.period_usage, date(2026, 3, 1), date(2026, 4, 1))
    assert set(usage) == {"api_calls", "invoices_sealed"}
    sealed = usage["invoices_sealed"]
    assert sealed.quantity == Decimal(1 + 5) and sealed.event_count == 4
    assert sealed.events_sha256 == hashlib.sha256(b"e1\ne3\ne5\nvoid:e3\n").hexdigest()
    assert [d.day.day for d in sealed.days] == [2, 4, 6]
    # Only days inside the period count.
    early = await read(app, tenant["id"], usage_service.period_usage, date(2026, 3, 1), date(2026, 3, 3))
    assert early["invoices_sealed"].quantity == 1 and early["api_calls"].quantity == 0
