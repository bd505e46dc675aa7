"""The WooCommerce simulator over real HTTP: no retries, disable after 5 failures, ping, notes and meta."""
from __future__ import annotations

import json

from tests.connectors.simulator.support import hmac_base64, wait_until

API = "/wp-json/wc/v3"


def _api(shop):
    creds = shop.credentials
    return shop.api(auth=(creds["consumer_key"], creds["consumer_secret"]))


def _status(shop, webhook_id: int) -> dict:
    with _api(shop) as api:
        return api.get(f"{API}/webhooks/{webhook_id}").json()


def test_deliveries_are_signed_base64_over_wordpress_json_and_a_creation_pings(make_shop, receiver):
    shop = make_shop("woocommerce")
    hook = shop.subscribe(receiver.url("/wc"), secret="wc-secret", topics=["order.created"])
    ping = wait_until(lambda: receiver.at("/wc"))[0]
    assert ping.body == f"webhook_id={hook['id']}".encode()
    assert "x-wc-webhook-signature" not in ping.headers
    assert ping.headers["content-type"] == "application/x-www-form-urlencoded"
    order = shop.order(prices_include_tax=True, billing={"first_name": "José", "email": "jose@example.com"},
                       line_items=[{"name": "Bombilla 1/2", "price": "121.00", "quantity": 1}],
                       shipping_lines=[{"total": "10.00"}])
    got = wait_until(lambda: len(receiver.at("/wc")) == 2 and receiver.at("/wc"))[1]
    assert b"\\/" in got.body and b"\\u00e9" in got.body  # wp_json_encode's escapes
    assert got.headers["x-wc-webhook-signature"] == hmac_base64("wc-secret", got.body)
    assert hmac_base64("wc-secret", json.dumps(got.json(), separators=(",", ":")).encode()) != \
        got.headers["x-wc-webhook-signature"]  # re-serialised, it no longer verifies
    assert got.headers["x-wc-webhook-topic"] == "order.created"
    assert (got.headers["x-wc-webhook-resource"], got.headers["x-wc-webhook-event"]) == ("order", "created")
    assert got.headers["x-wc-webhook-id"] == str(hook["id"])
    assert got.headers["x-wc-webhook-source"] == shop.url + "/"
    body = got.json()
    assert body["id"] == order["id"] and body["line_items"][0]["subtotal"] == "100.00"
    assert (body["total_tax"], body["shipping_tax"], body["total"]) == ("23.10", "2.10", "133.10")
    assert body["line_items"][0]["price"] == 100 and body["date_paid_gmt"] is None


def test_no_retry_and_disabled_after_five_consecutive_failures_until_reenabled(make_shop, receiver):
    shop = make_shop("woocommerce")
    receiver.answer("/wc", 200, 302, default=500)  # the ping, then a redirect counts as success
    hook = shop.subscribe(receiver.url("/wc"), topics=["order.created"])
    wait_until(lambda: receiver.at("/wc"))
    shop.order()
    shop.settle()
    assert _status(shop, hook["id"])["failure_count"] == 0
    for n in range(5):
        shop.order()
        shop.settle()
        assert _status(shop, hook["id"])["status"] == ("disabled" if n == 4 else "active")
    assert len(receiver.at("/wc")) == 1 + 1 + 5  # each failure tried once: no retry
    shop.order()
    shop.settle()
    assert len(receiver.at("/wc")) == 7  # disabled: nothing sent
    assert len({r.headers["x-wc-webhook-delivery-id"] for r in receiver.at("/wc")[1:]}) == 6
    receiver.answer("/wc", default=200)
    with _api(shop) as api:
        r = api.put(f"{API}/webhooks/{hook['id']}", json={"status": "active"})
        assert (r.json()["status"], r.json()["failure_count"]) == ("active", 0)
    shop.order()
    wait_until(lambda: len(receiver.at("/wc")) == 8)


def test_rest_api_basic_auth_pages_and_exclusive_modified_after(make_shop):
    shop = make_shop("woocommerce")
    ids = [shop.order()["id"] for _ in range(3)]
    shop.control.post("/_sim/clock", json={"advance_s": 2})
    changed = shop.patch(ids[0], customer_note="late change")
    with shop.api(auth=("ck_wrong", "cs_wrong")) as wrong:
        r = wrong.get(f"{API}/orders")
        assert (r.status_code, r.json()["code"]) == (401, "woocommerce_rest_cannot_view")
    with _api(shop) as api:
        query = {"orderby": "modified", "order": "asc", "per_page": 2, "dates_are_gmt": "true",
                 "modified_after": "2000-01-01T00:00:00"}
        first = api.get(f"{API}/orders", params=query)
        assert (first.headers["x-wp-total"], first.headers["x-wp-totalpages"]) == ("3", "2")
        second = api.get(f"{API}/orders", params={**query, "page": 2})
        assert [o["id"] for o in first.json() + second.json()] == [ids[1], ids[2], ids[0]]
        after = api.get(f"{API}/orders", params={**query, "modified_after": changed["date_modified_gmt"]})
        assert after.json() == []  # strictly after, at whole seconds
        assert api.get(f"{API}/orders", params={"per_page": 101}).status_code == 400
        creds = shop.credentials
        assert api.get(f"{API}/orders/{ids[0]}", auth=None, params={
            "consumer_key": creds["consumer_key"], "consumer_secret": creds["consumer_secret"]}).status_code == 200
        assert api.get(f"{API}/orders/9999").json()["code"] == "woocommerce_rest_shop_order_invalid_id"


def test_notes_add_up_and_meta_keys_are_replaced(make_shop, receiver):
    shop = make_shop("woocommerce")
    order = shop.order()
    shop.subscribe(receiver.url("/wc"), topics=["order.updated"])
    wait_until(lambda: receiver.at("/wc"))  # the ping
    meta = {"meta_data": [{"key": "_stalela_fiscal_number", "value": "FV-1"},
                          {"key": "_stalela_verify_url", "value": "https://v.example/1"}]}
    with _api(shop) as api:
        note = api.post(f"{API}/orders/{order['id']}/notes", json={"note": "Factura FV-1", "customer_note": False})
        assert note.status_code == 201 and note.json()["note"] == "Factura FV-1"
        api.post(f"{API}/orders/{order['id']}/notes", json={"note": "Factura FV-1"})
        assert len(api.get(f"{API}/orders/{order['id']}/notes").json()) == 2  # not idempotent
        assert api.post(f"{API}/orders/{order['id']}/notes", json={}).status_code == 400
        first = api.put(f"{API}/orders/{order['id']}", json=meta).json()
        again = api.put(f"{API}/orders/{order['id']}", json=meta).json()
        assert first["meta_data"] == again["meta_data"] and len(again["meta_data"]) == 2
        meta["meta_data"][0]["value"] = "FV-2"
        third = api.put(f"{API}/orders/{order['id']}", json=meta).json()
    assert {m["key"]: m["value"] for m in third["meta_data"]} == {
        "_stalela_fiscal_number": "FV-2", "_stalela_verify_url": "https://v.example/1"}
    shop.settle()
    assert len(receiver.at("/wc")) == 1 + 2  # the ping, then only the two real changes
    seen = shop.inspect(order["id"])
    assert [n["note"] for n in seen["notes"]] == ["Factura FV-1", "Factura FV-1"]
