"""The seams between the billing slices, on SQLite and PostgreSQL: one resource registry for usage, rating,
quotas and anomalies; quotas measured by the usage service; daily reads summing in SQL where no digest
is shown."""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from decimal import Decimal

import pytest

from stalela.billing import resources, usage_service
from stalela.billing.usage_repository import UsageRepository
from stalela.db.base import utcnow
from stalela.tenancy.context import bind_tenant
from tests.billing.support import plan_id

OPS = "/v1/ops/billing"
EXTRAS = "gpu_seconds:counter:3,seats:gauge:0"


@pytest.fixture
def settings(database_url, tmp_path):
    from tests.conftest import make_settings

    return make_settings(database_url, tmp_path, usage_resources=EXTRAS)


async def _on_plan(client, operator_headers, new_tenant, quotas: dict):
    pid = plan_id("seams")
    r = await client.post(f"{OPS}/plans", json={"id": pid, "name": "Seams", "quotas": quotas},
                          headers=operator_headers)
    assert r.status_code == 201, r.text
    tenant, headers = await new_tenant("Seams SARL", "SE1")
    r = await client.put(f"{OPS}/tenants/{tenant['id']}", json={"plan_id": pid}, headers=operator_headers)
    assert r.status_code == 200, r.text
    return tenant, headers


async def _record(client, headers, event_id, resource, quantity, occurred_at=None):
    body = {"event_id": event_id, "resource": resource, "quantity": quantity,
            "occurred_at": (occurred_at or utcnow()).isoformat()}
    r = await client.post("/v1/usage/events", json=body, headers=headers)
    assert r.status_code == 201, r.text


async def test_quotas_read_quantities_at_the_registry_scale(client, operator_headers, new_tenant):
    tenant, headers = await _on_plan(client, operator_headers, new_tenant,
                                     {"cpu_seconds": "10", "gpu_seconds": "1", "seats": "5"})
    await _record(client, headers, "cpu-1", "cpu_seconds", "2.5")  # stored in micro-seconds (scale 6)
    await _record(client, headers, "gpu-1", "gpu_seconds", "0.125")  # an extra resource, scale 3
    midnight = datetime.combine(utcnow().date(), time(), tzinfo=timezone.utc)
    await _record(client, headers, "seats-1", "seats", "3", midnight)  # a gauge: its level, not a sum
    report = (await client.get("/v1/billing/quotas", headers=headers)).json()
    assert report["data"] == [
        {"resource": "cpu_seconds", "cap": "10", "used": "2.5", "remaining": "7.5"},
        {"resource": "gpu_seconds", "cap": "1", "used": "0.125", "remaining": "0.875"},
        {"resource": "seats", "cap": "5", "used": "3", "remaining": "2"},
    ]


async def test_rating_knows_what_the_registry_knows(client, operator_headers, settings):
    pid = plan_id("reg")
    r = await client.post(f"{OPS}/plans", json={"id": pid, "name": "R", "quotas": {"nope": 1}},
                          headers=operator_headers)
    assert r.status_code == 422 and r.json()["code"] == "unknown_resource" and r.json()["field"] == "quotas.nope"
    r = await client.post(f"{OPS}/plans", json={"id": pid, "name": "R", "quotas": {"gpu_seconds": "2.5"}},
                          headers=operator_headers)
    assert r.status_code == 201, r.text
    r = await client.post(f"{OPS}/plans/{pid}/rate-cards", headers=operator_headers,
                          json={"effective_from": "2026-01-01", "prices": {"seats": {"unit_price": "1"}}})
    assert r.status_code == 201, r.text
    r = await client.post(f"{OPS}/plans/{pid}/rate-cards", headers=operator_headers,
                          json={"effective_from": "2026-02-01", "prices": {"gpus": {"unit_price": "1"}}})
    assert r.status_code == 422 and r.json()["field"] == "prices.gpus"
    assert resources.gauges(settings) == ["seats", "storage_bytes"]
    assert resources.of_stored("cpu_seconds", settings).scale == 6
    # A resource since removed from the settings still reads, as a counter without decimals.
    assert resources.of_stored("retired_thing", settings) == resources.Resource("retired_thing", "counter", 0, "unit")


async def test_daily_sums_counters_not_yet_aggregated_without_reading_their_ids(client, new_tenant, db, monkeypatch):
    tenant, headers = await new_tenant("Summed SARL", "SU1")
    for i, quantity in enumerate(("1.25", "2", "0.000001")):
        await _record(client, headers, f"cpu-{i}", "cpu_seconds", quantity)
    r = await client.post("/v1/usage/events/cpu-1/void", headers=headers)
    assert r.status_code == 201, r.text
    today = utcnow().date()
    reads: list[str] = []
    # The reads that fetch ids: into Python (SQLite), or hashed by the database (PostgreSQL).
    for name in ("counter_rows", "counter_digests"):
        def counting(original):
            async def read(self, resource, start, end):
                reads.append(resource)
                return await original(self, resource, start, end)
            return read

        monkeypatch.setattr(UsageRepository, name, counting(getattr(UsageRepository, name)))
    r = await client.get("/v1/usage/daily", params={"resource": "cpu_seconds"}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["data"] == [{"day": today.isoformat(), "resource": "cpu_seconds", "quantity": "1.250001"}]
    assert reads == []  # summed by the database
    async with db.transaction(readonly=True) as session:
        await bind_tenant(session, tenant["id"])
        [row] = await usage_service.daily(session, tenant["id"], "cpu_seconds", today, today + timedelta(days=1))
        period = await usage_service.period_usage(session, tenant["id"], today, today + timedelta(days=1))
    assert (row.quantity, row.event_count, row.events_digest) == (Decimal("1.250001"), 4, None)
    # The bill's view shows digests: it reads the ids.
    assert reads == ["cpu_seconds"]
    assert period["cpu_seconds"].days[0].event_count == 4 and period["cpu_seconds"].days[0].events_digest
