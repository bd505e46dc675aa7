"""Quotas: a capped plan refuses the seal past its cap with 429 quota_exceeded, consuming no number."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import event

from stalela.billing import quota_cache, quotas
from stalela.billing.usage_models import UsageEvent, UsageVoid
from stalela.db.base import utcnow
from stalela.kit.ids import new_id
from stalela.tenancy.context import bind_tenant
from tests.billing.support import plan_id
from tests.support.invoices import sample_invoice

OPS = "/v1/ops/billing"


async def _capped_tenant(client, operator_headers, new_tenant, caps: dict):
    pid = plan_id("capped")
    r = await client.post(f"{OPS}/plans", json={"id": pid, "name": "Capped", "quotas": caps}, headers=operator_headers)
    assert r.status_code == 201, r.text
    tenant, headers = await new_tenant("Capped SARL", "CP1")
    r = await client.put(f"{OPS}/tenants/{tenant['id']}", json={"plan_id": pid}, headers=operator_headers)
    assert r.status_code == 200, r.text
    outlet = (await client.post("/v1/outlets", json={"code": "Q1", "name": "Quota"}, headers=headers)).json()
    return pid, tenant, headers, outlet


def _assert_quota_problem(problem: dict, cap: str) -> None:
    now = datetime.now(timezone.utc)
    first_of_next = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=timezone.utc)
    assert problem["code"] == "quota_exceeded" and problem["status"] == 429
    assert problem["resource"] == "invoices_sealed" and problem["cap"] == cap
    assert problem["reset_at"] == first_of_next.strftime("%Y-%m-%dT%H:%M:%S.000Z")


async def test_single_seal_over_the_cap(client, operator_headers, new_tenant):
    pid, tenant, headers, outlet = await _capped_tenant(client, operator_headers, new_tenant, {"invoices_sealed": 2})
    first = await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers={**headers, "Idempotency-Key": "q-1"})
    second = await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)
    assert first.status_code == second.status_code == 201
    refused = await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)
    assert refused.status_code == 429, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    _assert_quota_problem(refused.json(), "2")
    assert 0 < int(refused.headers["Retry-After"]) <= 31 * 86400
    # A replay is no new seal: answered whatever the quota.
    replay = await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers={**headers, "Idempotency-Key": "q-1"})
    assert replay.status_code == 201 and replay.json()["id"] == first.json()["id"]
    # Raising the cap: the next seal takes the next number, the refused one consumed none.
    r = await client.patch(f"{OPS}/plans/{pid}", json={"quotas": {"invoices_sealed": 3}}, headers=operator_headers)
    assert r.status_code == 200
    third = await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)
    assert third.status_code == 201 and third.json()["counter"] == second.json()["counter"] + 1 == 3
    report = (await client.get("/v1/billing/quotas", headers=headers)).json()
    assert report["data"] == [{"resource": "invoices_sealed", "cap": "3", "used": "3", "remaining": "0"}]


async def test_batch_items_over_the_cap_fail_alone(client, operator_headers, new_tenant):
    pid, tenant, headers, outlet = await _capped_tenant(client, operator_headers, new_tenant, {"invoices_sealed": 3})
    assert (await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)).status_code == 201
    bad = sample_invoice(outlet["id"], lines=[])  # rejected by the rules: it does not count
    items = [{"invoice": sample_invoice(outlet["id"])}, {"invoice": bad}, {"invoice": sample_invoice(outlet["id"])},
             {"invoice": sample_invoice(outlet["id"])}, {"invoice": sample_invoice(outlet["id"])}]
    r = await client.post("/v1/invoices/batch", json={"items": items}, headers=headers)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert [d["status"] for d in data] == [201, 422, 201, 429, 429]
    assert [d["invoice"]["counter"] for d in data if d["status"] == 201] == [2, 3]
    _assert_quota_problem(data[3]["problem"], "3")
    await client.patch(f"{OPS}/plans/{pid}", json={"quotas": None}, headers=operator_headers)
    after = await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)
    assert after.status_code == 201 and after.json()["counter"] == 4
    assert (await client.get("/v1/billing/quotas", headers=headers)).json()["data"] == []


async def test_quota_report_counts_usage_net_of_voids(client, operator_headers, new_tenant, db):
    _, tenant, headers, _ = await _capped_tenant(client, operator_headers, new_tenant,
                                                 {"api_calls": 1000, "invoices_sealed": 50})
    now = utcnow()
    async with db.transaction() as session:
        await bind_tenant(session, tenant["id"])
        for units, event_id in ((700, "e1"), (200, "e2")):
            session.add(UsageEvent(tenant_id=tenant["id"], id=new_id("use"), event_id=event_id, resource="api_calls",
                                   quantity_units=units, occurred_at=now, payload_hash="0" * 64))
        session.add(UsageVoid(tenant_id=tenant["id"], event_id="e2", resource="api_calls", quantity_units=-200,
                              occurred_at=now))
    report = (await client.get("/v1/billing/quotas", headers=headers)).json()
    start, end = quotas.period_of(now)
    assert report["period"] == start.strftime("%Y-%m") and report["reset_at"] == end.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert report["data"] == [{"resource": "api_calls", "cap": "1000", "used": "700", "remaining": "300"},
                              {"resource": "invoices_sealed", "cap": "50", "used": "0", "remaining": "50"}]
    # No credential, no answer.
    assert (await client.get("/v1/billing/quotas")).status_code == 401


async def test_uncapped_tenant_costs_no_query_per_group(db, new_tenant, settings, client):
    tenant, _ = await new_tenant("Free SARL", "FR1")
    quota_cache.forget()
    async with db.transaction() as session:
        await bind_tenant(session, tenant["id"])
        assert await quotas.invoice_gate(session, settings, tenant["id"]) is None
    statements = []

    def count(*_args):
        statements.append(1)

    engine = db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        async with db.transaction() as session:
            await bind_tenant(session, tenant["id"])
            before = len(statements)
            assert await quotas.invoice_gate(session, settings, tenant["id"]) is None
            assert len(statements) == before  # served from the cache
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_period_bounds():
    start, end = quotas.period_of(datetime(2026, 12, 31, 23, 59, tzinfo=timezone.utc))
    assert (start, end) == (datetime(2026, 12, 1, tzinfo=timezone.utc), datetime(2027, 1, 1, tzinfo=timezone.utc))
    start, end = quotas.period_of(datetime(2026, 2, 1, tzinfo=timezone.utc))
    assert end == datetime(2026, 3, 1, tzinfo=timezone.utc)
