"""The Shopify simulator over real HTTP: REST orders, metafieldsSet, signed webhooks and their retries."""
from __future__ import annotations

import itertools
import json
from urllib.parse import parse_qsl, urlsplit

from tests.connectors.simulator.support import SECRET, hmac_base64, wait_until

API = "/admin/api/2025-01"
METAFIELDS_SET = ("mutation metafieldsSet($metafields: [MetafieldsSetInput!]!) { metafieldsSet("
                  "metafields: $metafields) { metafields { key namespace value } userErrors { "
                  "field message code } } }")
UNAUTHORIZED = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}


def _api(shop):
    return shop.api({"X-Shopify-Access-Token": shop.credentials["access_token"]})


def test_webhooks_carry_the_order_signed_base64_over_the_raw_body(make_shop, receiver):
    shop = make_shop("shopify")
    shop.subscribe(receiver.url("/hook"))
    order = shop.order(line_items=[{"title": "Mate", "price": "10.00", "quantity": 3,
                                    "tax_lines": [{"title": "IVA 21%", "rate": 0.21}]}])
    shop.pay(order["id"])
    got = wait_until(lambda: len(receiver.at("/hook")) == 3 and receiver.at("/hook"))
    # Each delivery travels on its own: they may arrive in any order, as with Shopify.
    got.sort(key=lambda r: ["orders/create", "orders/paid", "orders/updated"].index(
        r.headers["x-shopify-topic"]))
    for r in got:
        assert r.headers["x-shopify-hmac-sha256"] == hmac_base64(SECRET, r.body)
        assert r.headers["x-shopify-hmac-sha256"] != hmac_base64(SECRET, json.dumps(r.json()).encode())
        assert r.headers["x-shopify-api-version"] == "2025-01"
        assert r.headers["x-shopify-shop-domain"].endswith(".myshopify.com")
        assert r.headers["x-shopify-triggered-at"] and r.headers["x-shopify-webhook-id"]
    assert len({r.headers["x-shopify-event-id"] for r in got}) == 3
    body = got[1].json()
    assert body["id"] == order["id"] and body["financial_status"] == "paid"
    assert (body["subtotal_price"], body["total_tax"], body["total_price"]) == ("30.00", "6.30", "36.30")
    assert body["line_items"][0]["tax_lines"][0] == {"title": "IVA 21%", "rate": 0.21, "price": "6.30"}
    assert "metafields" not in body


def test_totals_are_exact_decimals_with_tax_included_and_shipping(make_shop):
    shop = make_shop("shopify")
    order = shop.order(taxes_included=True, line_items=[
        {"price": "121.00", "quantity": 1, "tax_lines": [{"title": "IVA 21%", "rate": "0.21"}]},
        {"price": "0.10", "quantity": 3, "discount_allocations": [{"amount": "0.05"}],
         "tax_lines": [{"title": "IVA 10.5%", "rate": 0.105}]}],
        shipping_lines=[{"title": "Envío", "price": "12.10",
                         "tax_lines": [{"title": "IVA 21%", "rate": 0.21}]}])
    assert order["line_items"][0]["tax_lines"][0]["price"] == "21.00"
    assert order["line_items"][1]["tax_lines"][0]["price"] == "0.02"  # 0.25 * 0.105 / 1.105
    assert (order["subtotal_price"], order["total_discounts"]) == ("121.25", "0.05")
    assert (order["total_tax"], order["total_price"]) == ("23.12", "133.35")
    assert {(t["title"], t["price"]) for t in order["tax_lines"]} == {("IVA 21%", "23.10"),
                                                                      ("IVA 10.5%", "0.02")}


def test_orders_api_needs_the_access_token(make_shop):
    shop = make_shop("shopify")
    order = shop.order()
    with shop.api() as anonymous, shop.api({"X-Shopify-Access-Token": "shpat_wrong"}) as wrong:
        for client in (anonymous, wrong):
            r = client.get(f"{API}/orders/{order['id']}.json")
            assert (r.status_code, r.json()) == (401, UNAUTHORIZED)
    with _api(shop) as api:
        r = api.get(f"{API}/orders/{order['id']}.json")
        assert r.status_code == 200 and r.json()["order"]["name"] == order["name"]
        r = api.get(f"{API}/orders/999.json")
        assert (r.status_code, r.json()) == (404, {"errors": "Not Found"})


def _next(link: str | None) -> str | None:
    for part in (link or "").split(","):
        url, _, rel = part.partition(";")
        if 'rel="next"' in rel:
            return url.strip()[1:-1]
    return None


def test_listing_pages_by_updated_at_with_link_cursors(make_shop):
    shop = make_shop("shopify")
    ids = [shop.order()["id"] for _ in range(5)]
    shop.control.post("/_sim/clock", json={"advance_s": 2})  # updated_at has whole seconds
    shop.patch(ids[0], note="moved to the end")  # now the most recently updated
    shop.patch(ids[4], cancelled_at="2025-01-10T10:00:00-03:00")
    with _api(shop) as api:
        seen, url = [], f"{API}/orders.json?status=any&updated_at_min=2000-01-01T00:00:00Z&limit=2"
        while url:
            r = api.get(url)
            assert r.status_code == 200
            seen += [o["id"] for o in r.json()["orders"]]
            url = _next(r.headers.get("link"))
            if url:  # the next URL carries only page_info and limit
                assert [k for k, _ in parse_qsl(urlsplit(url).query)] == ["page_info", "limit"]
        assert seen == ids[1:4] + [ids[0], ids[4]]
        open_only = [o["id"] for o in api.get(f"{API}/orders.json?limit=250").json()["orders"]]
        assert ids[4] not in open_only and len(open_only) == 4
        first = api.get(f"{API}/orders.json?status=any&limit=2")
        cursor = _next(first.headers["link"]).split("page_info=")[1]
        mixed = api.get(f"{API}/orders.json?status=any&page_info={cursor}")
        assert mixed.status_code == 400 and "page_info" in mixed.json()["errors"]
        assert api.get(f"{API}/orders.json?page_info=garbage").status_code == 400


def _metafields(number: str, url: str, order_id: int) -> dict:
    gid = f"gid://shopify/Order/{order_id}"
    return {"query": METAFIELDS_SET, "variables": {"metafields": [
        {"ownerId": gid, "namespace": "stalela", "key": "fiscal_number",
         "type": "single_line_text_field", "value": number},
        {"ownerId": gid, "namespace": "stalela", "key": "verify_url", "type": "url", "value": url}]}}


def test_metafields_set_is_idempotent_and_atomic(make_shop, receiver):
    shop = make_shop("shopify")
    order = shop.order()
    shop.subscribe(receiver.url("/hook"))
    with _api(shop) as api:
        first = api.post(f"{API}/graphql.json", json=_metafields("FV-1", "https://v.example/1", order["id"]))
        result = first.json()["data"]["metafieldsSet"]
        assert result["userErrors"] == [] and [m["value"] for m in result["metafields"]] == [
            "FV-1", "https://v.example/1"]
        again = api.post(f"{API}/graphql.json", json=_metafields("FV-1", "https://v.example/1", order["id"]))
        assert again.json()["data"]["metafieldsSet"]["metafields"] == result["metafields"]
        bad = _metafields("FV-2", "not a url", order["id"])
        bad["variables"]["metafields"].append({**bad["variables"]["metafields"][0], "ownerId":
                                               "gid://shopify/Order/1"})
        refused = api.post(f"{API}/graphql.json", json=bad).json()["data"]["metafieldsSet"]
        assert {(tuple(e["field"]), e["code"]) for e in refused["userErrors"]} == {
            (("metafields", "1", "value"), "INVALID_VALUE"), (("metafields", "2", "ownerId"), "INVALID")}
        stored = api.get(f"{API}/orders/{order['id']}.json").json()["order"]
    assert {m["key"]: m["value"] for m in stored["metafields"]} == {
        "fiscal_number": "FV-1", "verify_url": "https://v.example/1"}  # nothing of the refused call
    assert stored["updated_at"] == order["updated_at"]
    shop.settle()
    assert receiver.at("/hook") == []  # metafields raise no orders/updated


def test_a_failed_delivery_is_retried_with_the_original_payload_and_event_id(make_shop, receiver):
    shop = make_shop("shopify", retry_delays_s=(0.3, 0.3, 0.3))
    receiver.answer("/hook", 500, 503, default=200)
    shop.subscribe(receiver.url("/hook"), topics=["orders/create"])
    order = shop.order()
    wait_until(lambda: receiver.at("/hook"))
    shop.patch(order["id"], note="changed after the first attempt")
    got = wait_until(lambda: len(receiver.at("/hook")) == 3 and receiver.at("/hook"))
    assert len({r.body for r in got}) == 1 and "note" not in got[0].json()
    for name in ("x-shopify-event-id", "x-shopify-webhook-id", "x-shopify-triggered-at"):
        assert len({r.headers[name] for r in got}) == 1
    shop.settle()
    log = shop.deliveries(topic="orders/create")
    assert [(e["attempt"], e["status_code"], e["outcome"]) for e in log] == [
        (1, 500, "failed"), (2, 503, "failed"), (3, 200, "delivered")]


def test_eight_retries_over_four_hours_compressed_then_the_subscription_is_removed(make_shop, receiver):
    shop = make_shop("shopify", time_scale=36000)  # 4 h in 0.4 s
    receiver.answer("/hook", default=500)
    sub = shop.subscribe(receiver.url("/hook"), topics=["orders/create"])
    shop.order()
    wait_until(lambda: len(receiver.at("/hook")) == 9, what="9 attempts")
    shop.settle()
    times = [r.at for r in receiver.at("/hook")]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Doubling waits summing to 4 h / 36000 = 0.4 s: the last two are 0.2 s and 0.1 s (lower
    # bounds only: a loaded machine makes every wait longer, never shorter).
    assert gaps[-1] >= 0.19 and gaps[-2] >= 0.095 and times[-1] - times[0] >= 0.39
    status = {s["id"]: s["status"] for s in shop.control.get("/_sim/webhooks").json()}
    assert status[sub["id"]] == "deleted"
    shop.order()
    shop.settle()
    assert len(receiver.at("/hook")) == 9


def test_oauth_code_exchange_gives_a_working_token_once(make_shop):
    shop = make_shop("shopify")
    creds = shop.control.post("/_sim/tokens").json()
    body = {"client_id": creds["client_id"], "client_secret": SECRET, "code": creds["code"]}
    with shop.api() as client:
        r = client.post("/admin/oauth/access_token", json=body)
        assert r.status_code == 200 and r.json()["scope"]
        token = r.json()["access_token"]
        assert client.get(f"{API}/orders.json", headers={"X-Shopify-Access-Token": token}).status_code == 200
        assert client.post("/admin/oauth/access_token", json=body).status_code == 400
        assert client.post("/admin/oauth/access_token",
                           json={**body, "client_secret": "wrong"}).status_code == 400
