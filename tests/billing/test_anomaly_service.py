"""Detection against the database, on SQLite and PostgreSQL: each anomaly stored once with one outbox
event, one webhook and one metric increment, however often (and however concurrently) the job runs."""
from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from decimal import Decimal

from stalela.billing import anomaly_service, anomaly_tasks
from stalela.observability import metrics
from stalela.outbox.registry import Event, HandlerContext
from stalela.tenancy.context import bind_tenant
from stalela.webhooks import tasks as webhook_tasks
from tests.billing.anomaly_support import (
    DAY, new_tenant_id, set_overrides, spike_series, stored, write_usage,
)


def counted(tenant_id: str, resource: str) -> float:
    return metrics.COST_ANOMALIES.labels(tenant_id, resource)._value.get()  # noqa: SLF001


async def test_a_spike_is_stored_once_with_one_event_and_one_count(db, settings):
    tenant = new_tenant_id()
    await write_usage(db, tenant, "api_calls", spike_series())
    await write_usage(db, tenant, "invoices_sealed", [40] * 35)  # steady: nothing
    before = counted(tenant, "api_calls")
    [found] = await anomaly_tasks.detect_all(db, settings, DAY, tenant_id=tenant)
    assert (found["resource"], found["day"], found["status"], found["method"]) == ("api_calls", DAY, "open", "zscore")
    assert found["observed"] == "1000" and Decimal(found["score"]) > Decimal("2.5") and found["threshold"] == "2.5"
    assert abs(Decimal(found["baseline"]) - 100) < 1 and found["impact_eur"] == "0.00"  # inside the allowance
    for _ in range(3):  # the job re-runs: nothing more
        assert await anomaly_tasks.detect_all(db, settings, DAY, tenant_id=tenant) == []
    anomalies, events = await stored(db, tenant)
    assert [a.id for a in anomalies] == [found["id"]] and len(events) == 1
    payload = json.loads(events[0].payload)
    assert payload["anomaly_id"] == found["id"] and payload["day"] == DAY.isoformat() and payload["status"] == "open"
    assert counted(tenant, "api_calls") == before + 1


async def test_overlapping_runs_store_one(db, settings):
    tenant = new_tenant_id()
    await write_usage(db, tenant, "network_bytes", spike_series(level=10**9, spike=5 * 10**9))
    runs = await asyncio.gather(*[anomaly_tasks.detect_tenant(db, settings, tenant, DAY) for _ in range(8)])
    assert sum(len(r) for r in runs) == 1
    anomalies, events = await stored(db, tenant)
    assert len(anomalies) == 1 and len(events) == 1
    assert counted(tenant, "network_bytes") == 1


async def test_detect_all_finds_the_tenants_with_usage_that_day(db, settings):
    quiet, spiky = new_tenant_id(), new_tenant_id()
    await write_usage(db, quiet, "api_calls", [100] * 35)
    await write_usage(db, spiky, "storage_bytes", spike_series(level=10**6, spike=10**7))
    found = await anomaly_tasks.detect_all(db, settings, DAY)
    mine = [a for a in found if a["tenant_id"] in (quiet, spiky)]
    assert [(a["tenant_id"], a["resource"]) for a in mine] == [(spiky, "storage_bytes")]
    assert (await stored(db, quiet))[0] == []


async def test_quantities_are_read_at_the_resource_scale(db, settings):
    tenant = new_tenant_id()
    # cpu_seconds are stored in micro-seconds: 2.5 s a day, then 30 s.
    await write_usage(db, tenant, "cpu_seconds", [2_500_000] * 20 + [30_000_000])
    [found] = await anomaly_tasks.detect_all(db, settings, DAY, tenant_id=tenant)
    assert (found["observed"], found["baseline"], found["spread"], found["score"]) == ("30", "2.5", "1", "27.5")


async def test_no_verdict_without_seven_days_and_none_for_a_drop(db, settings):
    tenant = new_tenant_id()
    await write_usage(db, tenant, "api_calls", [10] * 6 + [1000])
    await write_usage(db, tenant, "invoices_sealed", [100] * 30 + [1])
    assert await anomaly_tasks.detect_all(db, settings, DAY, tenant_id=tenant) == []
    # The first day of usage starts the history even when it lies beyond the window.
    other = new_tenant_id()
    await write_usage(db, other, "api_calls", [100] + [0] * 40 + [100] * 5 + [1000])
    found = await anomaly_tasks.detect_all(db, settings, DAY, tenant_id=other)
    assert [a["baseline"] for a in found] == ["17.857143"]  # 5 × 100 over 28 days, the gap counted as zeros


async def test_the_price_gives_the_impact(db, settings):
    tenant = new_tenant_id()
    await write_usage(db, tenant, "api_calls", [100] * 30 + [1100])

    async def price(session, tenant_id, day, resource, quantity):
        assert (tenant_id, day, resource) == (tenant, DAY, "api_calls")
        return quantity * Decimal("0.001234")  # per call: rounded once, after the difference

    [found] = await anomaly_tasks.detect_all(db, settings, DAY, tenant_id=tenant, price=price)
    assert found["impact_eur"] == "1.23"  # (2900 + 1100 − (2900 + 100)) × 0.001234 = 1.234


async def test_the_impact_is_priced_in_the_period_at_the_tenants_rate_card(db, settings):
    # The default plan: API calls 0.10 per 1,000 after 100,000 a month.
    within, beyond = new_tenant_id(), new_tenant_id()
    await write_usage(db, within, "api_calls", [1_000] * 35 + [20_000])  # November so far: 29,000
    await write_usage(db, beyond, "api_calls", [5_000] * 35 + [50_000])  # November so far: 145,000
    [inside] = await anomaly_tasks.detect_all(db, settings, DAY, tenant_id=within)
    [past] = await anomaly_tasks.detect_all(db, settings, DAY, tenant_id=beyond)
    assert inside["impact_eur"] == "0.00"  # the spike stays inside the monthly allowance
    assert past["impact_eur"] == "4.50"  # 45,000 calls over the baseline × 0.10 / 1,000


async def test_tenant_overrides_win_over_the_settings(app, client, new_tenant, settings):
    db = app.state.db
    strict, _ = await new_tenant("Strict SARL", "S0000001")
    lenient, _ = await new_tenant("Lenient SARL", "L0000001")
    robust, _ = await new_tenant("Robust SARL", "R0000001")
    broken, _ = await new_tenant("Broken SARL", "B0000001")
    values = [100] * 30 + [140]  # score 8 with the floor (5)
    for tenant in (strict, lenient, robust, broken):
        await write_usage(db, tenant["id"], "api_calls", values)
    await set_overrides(db, strict["id"], "1.5", None)
    await set_overrides(db, lenient["id"], "10", None)
    await set_overrides(db, robust["id"], None, "mad")
    await set_overrides(db, broken["id"], "1E+99", "iqr")  # malformed rows fall back to the settings
    found = {a["tenant_id"]: a for a in await anomaly_tasks.detect_all(db, settings, DAY)}
    assert found[strict["id"]]["threshold"] == "1.5" and lenient["id"] not in found
    assert found[robust["id"]]["method"] == "mad" and found[robust["id"]]["baseline"] == "100"
    assert (found[broken["id"]]["threshold"], found[broken["id"]]["method"]) == ("2.5", "zscore")


async def test_one_webhook_per_anomaly_even_when_the_event_is_delivered_twice(app, client, new_tenant, settings):
    db = app.state.db
    tenant, headers = await new_tenant("Hooked SARL", "H0000001")
    r = await client.post("/v1/webhook-endpoints", json={"url": "https://hooks.example.com/anomalies",
                                                         "event_types": ["billing.anomaly_detected"]}, headers=headers)
    assert r.status_code == 201, r.text
    endpoint = r.json()
    await write_usage(db, tenant["id"], "api_calls", spike_series())
    [found] = await anomaly_tasks.detect_all(db, settings, DAY, tenant_id=tenant["id"])
    assert await anomaly_tasks.detect_all(db, settings, DAY, tenant_id=tenant["id"]) == []
    [event] = (await stored(db, tenant["id"]))[1]
    ctx = HandlerContext(db, settings)
    for _ in range(2):  # at least once
        await webhook_tasks.fan_out(ctx, Event(tenant["id"], event.id, event.topic, json.loads(event.payload), 1))
    r = await client.get(f"/v1/webhook-endpoints/{endpoint['id']}/messages", headers=headers)
    [message] = r.json()["data"]
    assert message["event_type"] == "billing.anomaly_detected"
    assert message["payload"]["data"] == {
        "anomaly_id": found["id"], "resource": "api_calls", "day": DAY.isoformat(), "observed": "1000",
        "baseline": found["baseline"], "score": found["score"], "impact_eur": "0.00", "status": "open"}


async def test_the_counter_is_labelled_and_folded(db, settings):
    tenant = new_tenant_id()
    await write_usage(db, tenant, "memory_byte_seconds", spike_series(level=10**9, spike=10**10))
    metrics.configure(tenant_labels=False)
    try:
        folded = counted("*", "memory_byte_seconds")
        await anomaly_tasks.detect_all(db, settings, DAY, tenant_id=tenant)
        assert counted("*", "memory_byte_seconds") == folded + 1
        assert counted(tenant, "memory_byte_seconds") == 0
    finally:
        metrics.configure(tenant_labels=True)


async def test_a_rolled_back_detection_stores_sends_and_counts_nothing(db, settings):
    tenant = new_tenant_id()
    await write_usage(db, tenant, "api_calls", spike_series())
    try:
        async with db.transaction() as session:
            await bind_tenant(session, tenant)
            assert len(await anomaly_service.detect(session, settings, tenant, DAY)) == 1
            raise RuntimeError("the worker died before the commit")
    except RuntimeError:
        pass
    assert await stored(db, tenant) == ([], []) and counted(tenant, "api_calls") == 0
    assert len(await anomaly_tasks.detect_all(db, settings, DAY + timedelta(days=0), tenant_id=tenant)) == 1
