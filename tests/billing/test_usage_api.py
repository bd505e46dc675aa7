"""Usage events over the API, on SQLite and PostgreSQL: exactly once, conflicts, the window, bad input,
batches answered per item, voids, the export and the daily figures."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from stalela.billing.usage_models import UsageEvent
from stalela.tenancy.context import bind_tenant
from tests.conftest import make_settings


@pytest.fixture
def settings(database_url, tmp_path):
    # A thousand requests at once must meet the exactly-once rule, not the rate limit.
    return make_settings(database_url, tmp_path, rate_limit_burst=100_000)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def ev(event_id: str, quantity="3", resource="api_calls", at: datetime | None = None, **extra):
    return {"event_id": event_id, "resource": resource, "quantity": quantity,
            "occurred_at": (at or _now() - timedelta(minutes=1)).isoformat(), **extra}


async def _rows(app, tenant_id: str, event_id: str) -> int:
    async with app.state.db.transaction(readonly=True) as session:
        await bind_tenant(session, tenant_id)
        stmt = select(func.count()).select_from(UsageEvent).where(UsageEvent.event_id == event_id)
        return (await session.execute(stmt)).scalar_one()


async def test_record_then_replay_then_conflict(client, new_tenant):
    tenant, key = await new_tenant()
    body = ev("evt-1", "12", properties={"region": "kin"})
    first = await client.post("/v1/usage/events", json=body, headers=key)
    assert first.status_code == 201, first.text
    created = first.json()
    assert created["duplicate"] is False and created["quantity"] == "12" and created["source"] == "api"
    assert created["properties"] == {"region": "kin"}

    # The same event, spelled differently (offset, trailing zeros are not allowed for scale 0): a duplicate.
    same = {**body, "occurred_at": datetime.fromisoformat(body["occurred_at"]).astimezone(
        timezone(timedelta(hours=1))).isoformat()}
    replay = await client.post("/v1/usage/events", json=same, headers=key)
    assert replay.status_code == 200, replay.text
    assert replay.json() == {**created, "duplicate": True}

    conflict = await client.post("/v1/usage/events", json={**body, "quantity": "13"}, headers=key)
    assert conflict.status_code == 409 and conflict.json()["code"] == "usage_event_conflict"
    assert conflict.json()["field"] == "event_id"


@pytest.mark.parametrize("quantity, code", [
    ("-1", "usage_quantity_invalid"), ("1.5", "usage_quantity_precision"), ("NaN", "usage_quantity_invalid"),
    ("Infinity", "usage_quantity_invalid"), ("1e3", "usage_quantity_invalid"), (" 1", "usage_quantity_invalid"),
    ("1" * 17, "usage_quantity_too_large"), ("9" * 50, "usage_quantity_too_large"), (1.5, None), (True, None),
    ("", "usage_quantity_invalid"), ("0x10", "usage_quantity_invalid"),
])
async def test_bad_quantities_are_422_naming_the_field(client, new_tenant, quantity, code):
    _, key = await new_tenant()
    r = await client.post("/v1/usage/events", json=ev("q", quantity), headers=key)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "quantity"
    if code:
        assert r.json()["code"] == code


async def test_decimal_places_follow_the_resource_scale(client, new_tenant):
    _, key = await new_tenant()
    r = await client.post("/v1/usage/events", json=ev("cpu", "1.250000", "cpu_seconds"), headers=key)
    assert r.status_code == 201 and r.json()["quantity"] == "1.250000"
    r = await client.post("/v1/usage/events", json=ev("cpu2", "1.0000001", "cpu_seconds"), headers=key)
    assert r.status_code == 422 and r.json()["code"] == "usage_quantity_precision"


async def test_unknown_resource_reserved_id_and_window(client, new_tenant):
    _, key = await new_tenant()
    r = await client.post("/v1/usage/events", json=ev("u", resource="gpu_hours"), headers=key)
    assert (r.status_code, r.json()["code"], r.json()["field"]) == (422, "unknown_resource", "resource")
    r = await client.post("/v1/usage/events", json=ev("stalela:invoice:x"), headers=key)
    assert (r.status_code, r.json()["code"]) == (422, "usage_event_id_reserved")
    for at in (_now() - timedelta(days=36), _now() + timedelta(minutes=6)):
        r = await client.post("/v1/usage/events", json=ev("w", at=at), headers=key)
        assert (r.status_code, r.json()["code"], r.json()["field"]) == (422, "usage_event_out_of_window", "occurred_at")
    r = await client.post("/v1/usage/events", json={**ev("n"), "occurred_at": "2026-01-01T00:00:00"}, headers=key)
    assert r.status_code == 422 and r.json()["field"] == "occurred_at"


async def test_mixed_batch_answers_each_item_in_order(client, new_tenant):
    _, key = await new_tenant()
    at = _now() - timedelta(minutes=1)
    assert (await client.post("/v1/usage/events", json=ev("old", "1", at=at), headers=key)).status_code == 201
    events = [ev("a", "1", at=at), ev("old", "1", at=at), ev("old", "2", at=at), ev("b", resource="nope"),
              ev("c", "-1"), {"event_id": "d"}, ev("a", "1", at=at), ev("a", "5", at=at),
              ev("late", at=_now() - timedelta(days=40)), ev("e", "2")]
    r = await client.post("/v1/usage/events/batch", json={"events": events}, headers=key)
    assert r.status_code == 200, r.text
    items = r.json()["data"]
    assert [i["index"] for i in items] == list(range(len(events)))
    assert [i["status"] for i in items] == [201, 200, 409, 422, 422, 422, 200, 409, 422, 201]
    assert [i["duplicate"] for i in items] == [False, True, None, None, None, None, True, None, None, False]
    assert items[3]["problem"]["code"] == "unknown_resource"
    assert items[4]["problem"]["field"] == "quantity"
    assert items[5]["problem"]["code"] == "validation_failed"
    assert items[8]["problem"]["code"] == "usage_event_out_of_window"
    assert items[6]["event"] == items[0]["event"]
    assert items[2]["problem"]["code"] == "usage_event_conflict"


async def test_batch_bounds(client, new_tenant):
    _, key = await new_tenant()
    r = await client.post("/v1/usage/events/batch", json={"events": [ev(f"x{i}") for i in range(1001)]}, headers=key)
    assert r.status_code == 422
    r = await client.post("/v1/usage/events/batch", json={"events": []}, headers=key)
    assert r.status_code == 422
    r = await client.post("/v1/usage/events/batch", json={"events": [ev(f"x{i}") for i in range(1000)]}, headers=key)
    assert r.status_code == 200 and {i["status"] for i in r.json()["data"]} == {201}


async def test_a_thousand_concurrent_duplicates_leave_one_row(app, client, new_tenant):
    tenant, key = await new_tenant()
    body = ev("race", "7")
    answers = await asyncio.gather(*[client.post("/v1/usage/events", json=body, headers=key) for _ in range(1000)])
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(201) == 1 and statuses.count(200) == 999, set(statuses)
    originals = {a.json()["id"] for a in answers}
    assert len(originals) == 1
    assert await _rows(app, tenant["id"], "race") == 1


async def test_void_is_appended_once(client, new_tenant):
    _, key = await new_tenant()
    assert (await client.post("/v1/usage/events", json=ev("v1", "4"), headers=key)).status_code == 201
    first = await client.post("/v1/usage/events/v1/void", json={"reason": "double-sent"}, headers=key)
    assert first.status_code == 201, first.text
    assert first.json()["quantity"] == "-4" and first.json()["duplicate"] is False
    again = await client.post("/v1/usage/events/v1/void", headers=key)
    assert again.status_code == 200
    assert {**again.json(), "duplicate": False} == first.json()
    missing = await client.post("/v1/usage/events/nope/void", headers=key)
    assert (missing.status_code, missing.json()["code"]) == (404, "usage_event_not_found")
    listed = (await client.get("/v1/usage/events", headers=key)).json()["data"]
    assert [(e["event_id"], e["voided_at"] is not None) for e in listed] == [("v1", True)]


async def test_listing_filters_and_pages(client, new_tenant):
    _, key = await new_tenant()
    base = _now() - timedelta(hours=3)
    for i in range(5):
        await client.post("/v1/usage/events", json=ev(f"p{i}", "1", at=base + timedelta(minutes=i)), headers=key)
    await client.post("/v1/usage/events", json=ev("net", "9", "network_bytes", at=base), headers=key)
    page = (await client.get("/v1/usage/events", params={"resource": "api_calls", "limit": 3}, headers=key)).json()
    assert [e["event_id"] for e in page["data"]] == ["p4", "p3", "p2"] and page["has_more"]
    rest = (await client.get("/v1/usage/events", params={"resource": "api_calls", "limit": 3,
                                                         "starting_after": page["data"][-1]["id"]}, headers=key)).json()
    assert [e["event_id"] for e in rest["data"]] == ["p1", "p0"] and not rest["has_more"]
    window = {"from": (base + timedelta(minutes=1)).isoformat(), "to": (base + timedelta(minutes=3)).isoformat()}
    got = (await client.get("/v1/usage/events", params=window, headers=key)).json()["data"]
    assert [e["event_id"] for e in got] == ["p2", "p1"]


async def test_daily_includes_events_not_yet_aggregated(client, new_tenant):
    _, key = await new_tenant()
    today = _now().date()
    await client.post("/v1/usage/events/batch", json={"events": [ev("d1", "2"), ev("d2", "3"), ev("d3", "5")]},
                      headers=key)
    await client.post("/v1/usage/events/d3/void", headers=key)
    r = await client.get("/v1/usage/daily", params={"resource": "api_calls", "from": today.isoformat(),
                                                    "to": today.isoformat()}, headers=key)
    assert r.status_code == 200, r.text
    assert r.json() == {"data": [{"day": today.isoformat(), "resource": "api_calls", "quantity": "5"}]}
    bad = await client.get("/v1/usage/daily", params={"from": "2025-01-01", "to": "2026-06-01"}, headers=key)
    assert (bad.status_code, bad.json()["code"]) == (422, "usage_range_too_long")
    bad = await client.get("/v1/usage/daily", params={"from": "2026-02-01", "to": "2026-01-01"}, headers=key)
    assert bad.status_code == 422


async def test_cashiers_and_narrow_keys_may_not_record(client, new_tenant):
    _, key = await new_tenant()
    narrow = (await client.post("/v1/api-keys", json={"name": "pos", "scopes": ["invoices:write"]}, headers=key)).json()
    r = await client.post("/v1/usage/events", json=ev("k"), headers={"Authorization": f"Bearer {narrow['api_key']}"})
    assert r.status_code == 403
    meter = (await client.post("/v1/api-keys", json={"name": "meter", "scopes": ["usage"]}, headers=key)).json()
    r = await client.post("/v1/usage/events", json=ev("k"), headers={"Authorization": f"Bearer {meter['api_key']}"})
    assert r.status_code == 201
