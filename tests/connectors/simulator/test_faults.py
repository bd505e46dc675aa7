"""Faults on demand, reproducible from a seed: drop, duplicate, reorder + flush, stale, API errors."""
from __future__ import annotations

import random
import time

import httpx
import pytest

from tests.connectors.simulator.support import wait_until


def _draws(seed: int, deliveries: int) -> tuple[list[list[float]], random.Random]:
    """What the simulator's delivery RNG decides: three draws per delivery (drop, duplicate, stale)."""
    rng = random.Random(seed)
    return [[rng.random() for _ in range(3)] for _ in range(deliveries)], rng


def test_drop_loses_exactly_the_seeded_deliveries(make_shop, receiver):
    shop = make_shop("shopify", faults={"drop": 0.5, "seed": 7})
    shop.subscribe(receiver.url("/hook"), topics=["orders/create"])
    ids = [shop.order()["id"] for _ in range(10)]
    shop.settle()
    draws, _ = _draws(7, 10)
    expected = [i for i, d in zip(ids, draws) if d[0] >= 0.5]
    assert 0 < len(expected) < 10
    assert sorted(r.json()["id"] for r in receiver.at("/hook")) == expected  # arrivals may cross
    dropped = shop.deliveries(outcome="dropped")
    assert sorted(e["order_id"] for e in dropped) == sorted(set(ids) - set(expected))
    assert all(e["attempt"] is None for e in dropped)


def test_a_dropped_delivery_loses_its_retries_too(make_shop, receiver):
    shop = make_shop("tiendanube", retry_delays_s=(0.01, 0.01), faults={"drop": 0.5, "seed": 7})
    receiver.answer("/tn", default=500)
    shop.subscribe(receiver.url("/tn"), topics=["order/created"])
    ids = [shop.order()["id"] for _ in range(6)]
    shop.settle()
    draws, _ = _draws(7, 6)
    attempts = {i: sum(r.json()["id"] == i for r in receiver.at("/tn")) for i in ids}
    assert attempts == {i: 0 if d[0] < 0.5 else 3 for i, d in zip(ids, draws)}


def test_duplicate_sends_the_same_event_twice(make_shop, receiver):
    shop = make_shop("shopify", faults={"duplicate": 1.0, "seed": 1})
    shop.subscribe(receiver.url("/hook"), topics=["orders/create"])
    shop.order()
    got = wait_until(lambda: len(receiver.at("/hook")) == 2 and receiver.at("/hook"))
    assert got[0].body == got[1].body
    assert got[0].headers["x-shopify-event-id"] == got[1].headers["x-shopify-event-id"]
    assert got[0].headers["x-shopify-webhook-id"] != got[1].headers["x-shopify-webhook-id"]
    shop.settle()
    assert sorted(e["copy"] for e in shop.deliveries()) == [1, 2]


def test_reorder_holds_deliveries_until_flush_then_shuffles_them(make_shop, receiver):
    shop = make_shop("tiendanube", faults={"reorder": True, "seed": 3})
    shop.subscribe(receiver.url("/tn"), topics=["order/created"])
    ids = [shop.order()["id"] for _ in range(6)]
    time.sleep(0.1)
    assert receiver.at("/tn") == [] and shop.control.get("/_sim/status").json()["held"] == 6
    released = shop.control.post("/_sim/flush").json()
    _, rng = _draws(3, 6)
    expected = list(ids)
    rng.shuffle(expected)
    assert [e["order_id"] for e in released["order"]] == expected != ids
    wait_until(lambda: len(receiver.at("/tn")) == 6)
    assert sorted(r.json()["id"] for r in receiver.at("/tn")) == ids


def test_stale_sends_the_order_as_it_was_before_the_change(make_shop, receiver):
    shop = make_shop("shopify", faults={"stale": 1.0})
    shop.subscribe(receiver.url("/hook"), topics=["orders/create", "orders/updated"])
    order = shop.order()
    shop.patch(order["id"], note="the newest version")
    got = wait_until(lambda: len(receiver.at("/hook")) == 2 and receiver.at("/hook"))
    updated = next(r for r in got if r.headers["x-shopify-topic"] == "orders/updated").json()
    assert "note" not in updated and updated["id"] == order["id"]
    shop.settle()
    assert {e["topic"]: e["stale"] for e in shop.deliveries()} == {
        "orders/create": False, "orders/updated": True}  # nothing older than a creation


def test_stale_does_not_touch_pointer_platforms(make_shop, receiver):
    shop = make_shop("tiendanube", faults={"stale": 1.0})
    shop.subscribe(receiver.url("/tn"), topics=["order/updated"])
    order = shop.order()
    shop.patch(order["id"], owner_note="x")
    got = wait_until(lambda: receiver.at("/tn"))[0]
    assert got.json() == {"store_id": order["store_id"], "event": "order/updated", "id": order["id"]}


def test_api_faults_503_hang_up_and_delay(make_shop):
    shop = make_shop("shopify")
    api = shop.api({"X-Shopify-Access-Token": shop.credentials["access_token"]})
    path = "/admin/api/2025-01/orders.json"
    shop.faults(api_5xx=1.0)
    r = api.get(path)
    assert (r.status_code, r.json()) == (503, {"errors": "Service Unavailable"})
    assert shop.control.get("/_sim/status").status_code == 200  # the controls never fail
    shop.faults(hang_up=1.0)
    with pytest.raises(httpx.TransportError):
        api.get(path)
    shop.faults(api_delay_ms=200)
    started = time.monotonic()
    assert api.get(path).status_code == 200 and time.monotonic() - started >= 0.2
    api.close()


def test_fault_specs_are_checked(make_shop):
    shop = make_shop("woocommerce")
    assert shop.control.post("/_sim/faults", json={"dorp": 0.5}).status_code == 422
    assert shop.control.post("/_sim/faults", json={"api_5xx": 0.7, "hang_up": 0.5}).status_code == 422
    assert shop.control.post("/_sim/faults", json={"drop": 2}).status_code == 422
    assert shop.faults(drop=0.25, seed=9)["drop"] == 0.25
    assert shop.control.get("/_sim/faults").json()["seed"] == 9
