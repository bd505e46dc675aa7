"""The api_calls quota, on SQLite and PostgreSQL: past the plan's monthly cap the API answers 429
quota_exceeded; the quota's endpoint and usage recording are never refused; the estimate adds this
process's unflushed calls to what the database holds, never counting a call twice; an uncapped tenant
costs no query per request."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import event
from starlette.requests import Request

from stalela.auth.principal import Principal
from stalela.billing import api_quota, quota_cache, usage_service
from stalela.db.base import utcnow
from stalela.tenancy.context import bind_platform
from tests.billing.support import plan_id

OPS = "/v1/ops/billing"


@pytest.fixture
def settings(database_url, tmp_path):
    from tests.conftest import make_settings

    # Flushes only when a test says so: the counts it asserts do not move under it.
    return make_settings(database_url, tmp_path, usage_flush_seconds=3600, rate_limit_burst=10_000)


async def _capped(client, operator_headers, new_tenant, cap: int):
    pid = plan_id("calls")
    r = await client.post(f"{OPS}/plans", json={"id": pid, "name": "Calls", "quotas": {"api_calls": cap}},
                          headers=operator_headers)
    assert r.status_code == 201, r.text
    tenant, headers = await new_tenant("Chatty SARL", "AC1")
    r = await client.put(f"{OPS}/tenants/{tenant['id']}", json={"plan_id": pid}, headers=operator_headers)
    assert r.status_code == 200, r.text
    return pid, tenant, headers


def _usage_event(event_id: str) -> dict:
    return {"event_id": event_id, "resource": "cpu_seconds", "quantity": "1.5", "occurred_at": utcnow().isoformat()}


async def test_calls_past_the_cap_are_refused_until_the_cap_rises(app, client, operator_headers, new_tenant):
    pid, tenant, headers = await _capped(client, operator_headers, new_tenant, 5)
    counter = app.state.api_calls
    answers = [(await client.get("/v1/outlets", headers=headers)).status_code for _ in range(7)]
    assert answers == [200] * 5 + [429] * 2
    assert counter.counted[tenant["id"]] == 5  # refused calls are not API calls billed
    refused = await client.get("/v1/invoices", headers=headers)
    assert refused.status_code == 429 and refused.headers["content-type"].startswith("application/problem+json")
    problem = refused.json()
    now = datetime.now(timezone.utc)
    first_of_next = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=timezone.utc)
    assert (problem["code"], problem["resource"], problem["cap"]) == ("quota_exceeded", "api_calls", "5")
    assert problem["reset_at"] == first_of_next.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert 0 < int(refused.headers["Retry-After"]) <= 31 * 86400
    # The quota's endpoint answers (and is not counted); recording usage is never refused (but counted).
    for _ in range(3):
        assert (await client.get("/v1/billing/quotas", headers=headers)).status_code == 200
    r = await client.post("/v1/usage/events", json=_usage_event("over-cap-1"), headers=headers)
    assert r.status_code == 201, r.text
    assert counter.counted[tenant["id"]] == 6
    await counter.flush(app.state.db)
    report = (await client.get("/v1/billing/quotas", headers=headers)).json()
    assert report["data"] == [{"resource": "api_calls", "cap": "5", "used": "6", "remaining": "0"}]
    # A higher cap admits calls again at once in this process (the caps cache is forgotten on change).
    r = await client.patch(f"{OPS}/plans/{pid}", json={"quotas": {"api_calls": 8}}, headers=operator_headers)
    assert r.status_code == 200, r.text
    answers = [(await client.get("/v1/outlets", headers=headers)).status_code for _ in range(3)]
    assert answers == [200, 200, 429]
    # Operator routes never pass the gate.
    assert (await client.get(f"{OPS}/tenants/{tenant['id']}", headers=operator_headers)).status_code == 200


async def test_the_estimate_adds_other_processes_and_counts_no_flush_twice(app, client, operator_headers, new_tenant,
                                                                          monkeypatch):
    _, tenant, headers = await _capped(client, operator_headers, new_tenant, 10)
    counter = app.state.api_calls
    # Another API process flushed 4 calls of this tenant.
    async with app.state.db.transaction() as session:
        await bind_platform(session)
        await usage_service.record_metered(session, [(tenant["id"], "stalela:api:other:1:" + tenant["id"],
                                                      "api_calls", 4, utcnow())])
    for _ in range(3):
        assert (await client.get("/v1/outlets", headers=headers)).status_code == 200
    # This process flushes its 3 and reads the database again at every request from now on.
    await counter.flush(app.state.db)
    monkeypatch.setattr(api_quota, "REFRESH_SECONDS", 0.0)
    answers = [(await client.get("/v1/outlets", headers=headers)).status_code for _ in range(5)]
    assert answers == [200, 200, 200, 429, 429]  # 4 + 3 flushed, 3 more unflushed: 10
    measured = counter.measured[tenant["id"]]
    assert api_quota.estimate(counter, tenant["id"], measured) == 10
    await counter.flush(app.state.db)
    assert (await client.get("/v1/outlets", headers=headers)).status_code == 429
    assert api_quota.estimate(counter, tenant["id"], counter.measured[tenant["id"]]) == 10


async def test_without_metering_nothing_is_refused(database_url, tmp_path, operator_headers):
    import httpx

    from stalela.app import create_app
    from tests.conftest import make_settings

    app = create_app(make_settings(database_url, tmp_path, usage_metering=False))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            async def tenant(name, tax_id):
                r = await client.post("/v1/tenants", json={"name": name, "tax_id": tax_id, "jurisdiction": "CD"},
                                      headers=operator_headers)
                return r.json()["tenant"], {"Authorization": f"Bearer {r.json()['api_key']}"}

            _, _, headers = await _capped(client, operator_headers, tenant, 1)
            answers = [(await client.get("/v1/outlets", headers=headers)).status_code for _ in range(3)]
            assert answers == [200] * 3


def _request(app, path: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": path, "query_string": b"", "headers": [],
                    "scheme": "http", "server": ("t", 80), "app": app, "state": {}})


async def test_an_uncapped_tenant_costs_no_query_per_request(app, new_tenant):
    tenant, _ = await new_tenant("Free Calls SARL", "FC1")
    principal = Principal(kind="api_key", tenant_id=tenant["id"], api_key_id="key_x", tenant_status="active")
    quota_cache.forget()
    await api_quota.api_calls_gate(_request(app, "/v1/outlets"), principal, None)  # reads the caps once
    statements = []

    def count(*_args):
        statements.append(1)

    engine = app.state.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        for _ in range(50):
            await api_quota.api_calls_gate(_request(app, "/v1/outlets"), principal, None)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert statements == []
    assert tenant["id"] not in app.state.api_calls.measured
