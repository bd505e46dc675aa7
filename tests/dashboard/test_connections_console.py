"""The console's marketplace connections: the list, a connection's page with its parked orders and their
difference, retry and dismiss, pause and sync; owners see it, cashiers do not; French and Spanish."""
from __future__ import annotations

import pytest

from stalela.connectors.models import ConnectorOrder
from stalela.db.base import utcnow
from stalela.tenancy.context import bind_tenant
from tests.dashboard.conftest import set_tenant_language


async def _connected(app, client, org) -> dict:
    r = await client.post("/v1/connections", json={
        "platform": "shopify", "shop": "kin-boutique.myshopify.com", "outlet_id": org["outlet"]["id"],
        "api_base_url": "http://127.0.0.1:9", "credentials": {"access_token": "shpat_x", "webhook_secret": "s"}},
        headers=org["key"])
    assert r.status_code == 201, r.text
    connection = r.json()
    async with app.state.db.transaction() as session:
        await bind_tenant(session, org["tenant"]["id"])
        session.add(ConnectorOrder(tenant_id=org["tenant"]["id"], connection_id=connection["id"], order_key="5001",
                                   order_id="5001", status="parked", version="2026-12-01T00:00:00.000000Z",
                                   reason="totals_mismatch", detail="our total 7200.00 differs from 7199.00",
                                   difference="1.00", platform_total="7199.00", currency="CDF", write_back="none",
                                   created_at=utcnow(), updated_at=utcnow()))
    return connection


async def test_an_owner_sees_the_connection_and_settles_a_parked_order(app, client, org, owner):
    c = await _connected(app, client, org)
    page = await owner.get("/app/connections")
    assert page.status_code == 200 and "kin-boutique.myshopify.com" in page.text
    assert 'data-testid="parked"' in page.text
    page = await owner.get(f"/app/connections/{c['id']}")
    assert page.status_code == 200
    assert "totals_mismatch" in page.text and 'data-testid="difference">1.00<' in page.text
    assert c["webhook_url"] in page.text and "shpat_x" not in page.text
    r = await owner.post(f"/app/connections/{c['id']}/orders/5001/retry")
    assert r.status_code == 303 and r.headers["location"].endswith("?retry=1")
    r = await owner.post(f"/app/connections/{c['id']}/orders/5001/dismiss")
    assert r.status_code == 303
    order = (await client.get(f"/v1/connections/{c['id']}/orders/5001", headers=org["key"])).json()
    assert order["status"] == "dismissed"
    r = await owner.post(f"/app/connections/{c['id']}/status", {"status": "paused"})
    assert r.status_code == 303
    assert (await client.get(f"/v1/connections/{c['id']}", headers=org["key"])).json()["status"] == "paused"
    # No CSRF token: refused.
    r = await owner.post(f"/app/connections/{c['id']}/status", {"status": "active"}, csrf=False)
    assert r.status_code == 403


async def test_a_cashier_does_not_see_connections(app, client, org, cashier):
    c = await _connected(app, client, org)
    assert (await cashier.get("/app/connections")).status_code == 403
    assert (await cashier.get(f"/app/connections/{c['id']}")).status_code == 403
    assert "/app/connections" not in (await cashier.get("/app")).text


@pytest.mark.parametrize("lang,words", [("fr", ["Connexions aux places de marché", "Commandes mises de côté"]),
                                        ("es", ["Conexiones con marketplaces", "Pedidos apartados"])])
async def test_the_pages_speak_french_and_spanish(app, client, org, owner, lang, words):
    c = await _connected(app, client, org)
    await set_tenant_language(app, org["tenant"]["id"], lang)
    assert words[0] in (await owner.get("/app/connections")).text
    assert words[1] in (await owner.get(f"/app/connections/{c['id']}")).text
