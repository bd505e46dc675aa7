"""Connections through the API: created with encrypted credentials never shown again, listed, paused,
deleted; and the inbound webhook's answers (signature first, 2xx no-ops, duplicates collapsed)."""
from __future__ import annotations

import json

from sqlalchemy import select

from stalela.connectors.models import Connection, ConnectorDelivery
from stalela.tenancy.context import bind_platform, bind_tenant
from tests.connectors.conftest import dumps, shopify_headers

SHOPIFY = {"access_token": "shpat_secret_token", "webhook_secret": "hush-hush"}


async def test_a_connection_keeps_its_secrets_and_never_shows_them(shop):
    c = await shop.connect("shopify", SHOPIFY, shop="kin-market.myshopify.com")
    assert c["webhook_url"] == f"/v1/connectors/shopify/{c['id']}/webhooks"
    assert c["credential_kinds"] == ["access_token", "webhook_secret"]
    assert c["status"] == "active" and c["orders"]["invoiced"] == 0
    for r in (await shop.client.get(f"/v1/connections/{c['id']}", headers=shop.headers),
              await shop.client.get("/v1/connections", headers=shop.headers)):
        assert r.status_code == 200 and "shpat_secret_token" not in r.text and "hush-hush" not in r.text
    async with shop.db.transaction(readonly=True) as session:
        await bind_platform(session)
        row = (await session.execute(select(Connection).where(Connection.id == c["id"]))).scalar_one()
    assert b"shpat_secret_token" not in bytes(row.credentials)  # encrypted at rest


async def test_bad_requests_are_clear_4xx(shop):
    base = {"platform": "shopify", "shop": "x.myshopify.com", "outlet_id": shop.outlet,
            "api_base_url": "http://127.0.0.1:9"}
    r = await shop.client.post("/v1/connections", json={**base, "credentials": {"access_token": "t"}},
                               headers=shop.headers)
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    r = await shop.client.post("/v1/connections", json={**base, "credentials": SHOPIFY, "outlet_id": "out_nope"},
                               headers=shop.headers)
    assert r.status_code == 422 and r.json()["code"] == "outlet_not_found"
    r = await shop.client.post("/v1/connections", json={**base, "platform": "amazon", "credentials": SHOPIFY},
                               headers=shop.headers)
    assert r.status_code == 422
    await shop.connect("shopify", SHOPIFY, shop="dup.myshopify.com")
    r = await shop.client.post("/v1/connections", json={**base, "shop": "dup.myshopify.com", "credentials": SHOPIFY},
                               headers=shop.headers)
    assert r.status_code == 409 and r.json()["code"] == "connection_exists"


async def test_the_outbound_guard_refuses_a_private_api_url_outside_development(database_url, tmp_path):
    from tests.connectors.conftest import open_shop
    async for world in open_shop(database_url, tmp_path, webhooks_allow_private=False):
        r = await world.client.post("/v1/connections", json={
            "platform": "woocommerce", "shop": "https://shop.example", "outlet_id": world.outlet,
            "api_base_url": "http://127.0.0.1:8080",
            "credentials": {"consumer_key": "ck_1", "consumer_secret": "cs_1", "webhook_secret": "s"}},
            headers=world.headers)
        assert r.status_code == 422, r.text
        assert r.json()["code"].startswith("connection_url")


async def test_pause_resume_delete(shop):
    c = await shop.connect("shopify", SHOPIFY)
    r = await shop.client.patch(f"/v1/connections/{c['id']}", json={"status": "paused"}, headers=shop.headers)
    assert r.status_code == 200 and r.json()["status"] == "paused"
    body = dumps({"id": 1001, "updated_at": "2026-12-01T10:00:00Z"})
    r = await shop.post_webhook(c, body, shopify_headers("orders/paid"), secret=SHOPIFY["webhook_secret"])
    assert r.status_code == 200 and r.json()["note"].startswith("paused")
    r = await shop.client.patch(f"/v1/connections/{c['id']}", json={"status": "active"}, headers=shop.headers)
    assert r.json()["status"] == "active"
    assert (await shop.client.delete(f"/v1/connections/{c['id']}", headers=shop.headers)).status_code == 204
    assert (await shop.client.get(f"/v1/connections/{c['id']}", headers=shop.headers)).status_code == 404
    r = await shop.post_webhook(c, body, shopify_headers("orders/paid"), secret=SHOPIFY["webhook_secret"])
    assert r.status_code == 404
    # The store may be connected again once the old connection is deleted.
    await shop.connect("shopify", SHOPIFY, shop=c["shop"])


async def test_webhook_signature_is_checked_on_raw_bytes(shop):
    c = await shop.connect("shopify", SHOPIFY)
    body = dumps({"id": 1002, "updated_at": "2026-12-01T10:00:00Z", "financial_status": "paid"})
    r = await shop.post_webhook(c, body, shopify_headers("orders/paid"), secret="wrong")
    assert r.status_code == 401 and r.json()["code"] == "webhook_signature_invalid"
    r = await shop.post_webhook(c, body, shopify_headers("orders/paid"))  # none at all
    assert r.status_code == 401
    # Signed, then re-serialised by a middlebox: no longer the signed bytes.
    headers = shopify_headers("orders/paid")
    from stalela.connectors import signatures
    headers["X-Shopify-Hmac-Sha256"] = signatures.expected("shopify", SHOPIFY["webhook_secret"], body)
    r = await shop.client.post(c["webhook_url"], content=json.dumps(json.loads(body), indent=1).encode(),
                               headers=headers)
    assert r.status_code == 401
    r = await shop.client.post(c["webhook_url"], content=body, headers=headers)
    assert r.status_code == 200 and r.json()["delivery_id"].startswith("dlv_")


async def test_duplicates_collapse_and_no_ops_answer_200(shop):
    c = await shop.connect("shopify", SHOPIFY)
    body = dumps({"id": 1003, "updated_at": "2026-12-01T10:00:00Z"})
    headers = shopify_headers("orders/paid", event_id="evt-same")
    first = await shop.post_webhook(c, body, headers, secret=SHOPIFY["webhook_secret"])
    again = await shop.post_webhook(c, body, headers, secret=SHOPIFY["webhook_secret"])
    assert first.json()["delivery_id"] and again.json() == {"received": True, "delivery_id": None, "note": "duplicate"}
    other = await shop.post_webhook(c, dumps({"id": 5}), shopify_headers("products/update"),
                                    secret=SHOPIFY["webhook_secret"])
    assert other.status_code == 200 and other.json()["note"].startswith("ignored")
    junk = await shop.post_webhook(c, b"not json", shopify_headers("orders/paid"), secret=SHOPIFY["webhook_secret"])
    assert junk.status_code == 200 and junk.json()["note"].startswith("ignored")
    async with shop.db.transaction(readonly=True) as session:
        await bind_tenant(session, shop.tenant["id"])
        rows = (await session.execute(select(ConnectorDelivery))).scalars().all()
    assert len(rows) == 1 and bytes(rows[0].body) == body


async def test_woocommerce_ping_is_a_no_op(shop):
    c = await shop.connect("woocommerce", {"consumer_key": "ck_1", "consumer_secret": "cs_1", "webhook_secret": "s"},
                           shop="https://shop.example")
    r = await shop.client.post(c["webhook_url"], content=b"webhook_id=17",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and r.json()["note"] == "ping"


async def test_another_tenants_connection_is_not_found(shop):
    c = await shop.connect("shopify", SHOPIFY)
    r = await shop.client.post("/v1/tenants", json={"name": "Other", "tax_id": "A7654321B", "jurisdiction": "CD"},
                               headers={"Authorization": "Bearer test-operator-token"})
    other = {"Authorization": f"Bearer {r.json()['api_key']}"}
    for method, path in (("GET", f"/v1/connections/{c['id']}"), ("PATCH", f"/v1/connections/{c['id']}"),
                         ("DELETE", f"/v1/connections/{c['id']}"), ("GET", f"/v1/connections/{c['id']}/orders")):
        r = await shop.client.request(method, path, headers=other, json={} if method == "PATCH" else None)
        assert r.status_code == 404, (method, path, r.text)
    assert (await shop.client.get("/v1/connections", headers=other)).json()["data"] == []


async def test_a_body_too_large_is_413(shop):
    c = await shop.connect("shopify", SHOPIFY)
    r = await shop.client.post(c["webhook_url"], content=b"x" * (shop.settings.connectors_webhook_max_bytes + 1),
                               headers=shopify_headers("orders/paid"))
    assert r.status_code == 413
