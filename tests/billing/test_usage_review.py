"""Regressions found by the independent review: an id's out-of-window first item in a batch, voids older
than the window, digits that are not ASCII, a day's sum beyond 64 bits."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from stalela.billing import usage_service


def _at(delta: timedelta) -> str:
    return (datetime.now(timezone.utc).replace(microsecond=0) + delta).isoformat()


async def test_an_out_of_window_item_does_not_shadow_a_later_valid_one(client, new_tenant):
    _, headers = await new_tenant("Window SARL", "WI1")
    old, ok = _at(-timedelta(days=40)), _at(-timedelta(hours=1))
    item = {"event_id": "dup-1", "resource": "api_calls", "quantity": "1"}
    r = await client.post("/v1/usage/events/batch", headers=headers, json={"events": [
        {**item, "occurred_at": old}, {**item, "occurred_at": ok}, {**item, "occurred_at": old},
        {**item, "occurred_at": ok}]})
    assert r.status_code == 200, r.text
    # As four calls one after the other: refused (nothing recorded yet), recorded, conflict, replay.
    assert [d["status"] for d in r.json()["data"]] == [422, 201, 409, 200]
    assert r.json()["data"][0]["problem"]["code"] == "usage_event_out_of_window"


async def test_an_event_older_than_the_bills_lookback_cannot_be_voided(client, new_tenant, monkeypatch):
    """Bills credit voids of the two periods before theirs: a void of an older period could never be."""
    _, headers = await new_tenant("Old Void SARL", "OV1")
    now = datetime(2026, 6, 10, 12, tzinfo=timezone.utc)
    monkeypatch.setattr(usage_service.clock, "now", lambda: now)
    for event_id in ("old-1", "old-2"):
        r = await client.post("/v1/usage/events", headers=headers, json={
            "event_id": event_id, "resource": "api_calls", "quantity": "3", "occurred_at": "2026-05-10T09:00:00Z"})
        assert r.status_code == 201, r.text
    now = datetime(2026, 7, 15, tzinfo=timezone.utc)  # the bill of July looks back to May: creditable
    r = await client.post("/v1/usage/events/old-1/void", headers=headers)
    assert r.status_code == 201, r.text
    now = datetime(2026, 8, 20, tzinfo=timezone.utc)  # August's looks back to June only
    r = await client.post("/v1/usage/events/old-2/void", headers=headers)
    assert r.status_code == 422, r.text
    assert (r.json()["code"], r.json()["field"]) == ("usage_event_out_of_window", "event_id")


async def test_quantities_are_ascii_digits_only(client, new_tenant):
    _, headers = await new_tenant("Digits SARL", "DG1")
    for quantity in ("١٢", "12\n", "１２"):
        r = await client.post("/v1/usage/events", headers=headers, json={
            "event_id": "d-1", "resource": "api_calls", "quantity": quantity, "occurred_at": _at(-timedelta(hours=1))})
        assert r.status_code == 422, (quantity, r.text)
        assert r.json()["field"] == "quantity"


async def test_a_day_beyond_64_bits_is_still_read(client, new_tenant):
    _, headers = await new_tenant("Huge SARL", "HU1")
    at = _at(-timedelta(hours=1))
    for b in range(10):
        r = await client.post("/v1/usage/events/batch", headers=headers, json={"events": [
            {"event_id": f"big-{b}-{i}", "resource": "network_bytes", "quantity": str(10**15), "occurred_at": at}
            for i in range(1000)]})
        assert r.status_code == 200, r.text
    r = await client.get("/v1/usage/daily", headers=headers, params={"resource": "network_bytes"})
    assert r.status_code == 200, r.text
    assert r.json()["data"][0]["quantity"] == str(10**19)
