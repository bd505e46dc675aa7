"""What the independent review of the connectors found, each as a test: a refused credit note parks (the
invoice stays, a person is told), a suspended tenant's orders wait (never sealed, never dropped), a store's
history is not sealed by the first poll unless asked, deeply nested bodies are a 2xx no-op, new tokens keep
the connection."""
from __future__ import annotations

from sqlalchemy import select

from stalela.outbox.models import OutboxEvent
from stalela.tenancy.context import bind_tenant
from tests.connectors.conftest import shopify_headers
from tests.connectors.live import SIM_SECRET, Sim, pump_until_quiet
from tests.connectors.test_end_to_end import DRC_LINE, poll
from tests.connectors.test_processing import SECRET, SHOPIFY, deliver, dumps_order, invoices, order
from tests.support.invoices import sample_invoice

OPERATOR = {"Authorization": "Bearer test-operator-token"}


async def test_a_refused_credit_note_parks_the_order_and_keeps_the_invoice(shop):
    c = await shop.connect("shopify", SHOPIFY)
    paid = order("refunded", financial_status="paid", updated_at="2026-11-20T10:00:00-05:00")
    await deliver(shop, c, dumps_order(paid), event_id="paid")
    await shop.pump()
    # Someone already used the credit note's reference by hand: the connector's credit note is refused.
    r = await shop.client.post("/v1/invoices", json=sample_invoice(shop.outlet, reference="shopify:5009:refund"),
                               headers=shop.headers)
    assert r.status_code == 201, r.text
    await deliver(shop, c, dumps_order(order("refunded", updated_at="2026-11-20T11:00:00-05:00")),
                  topic="orders/updated", event_id="refund")
    await shop.pump()
    [row] = await shop.orders(c)
    assert row["status"] == "parked" and row["reason"].startswith("rejected:"), row
    assert row["invoice_id"] and row["credit_note_id"] is None
    assert "credit note" in row["detail"]


async def test_a_suspended_tenants_orders_wait_and_are_not_parked(shop):
    c = await shop.connect("shopify", SHOPIFY)
    r = await shop.client.post(f"/v1/tenants/{shop.tenant['id']}/suspend", headers=OPERATOR)
    assert r.status_code == 200, r.text
    r = await shop.post_webhook(c, dumps_order(order("paid_exclusive")), shopify_headers("orders/paid"),
                                secret=SECRET)
    assert r.status_code == 200  # acknowledged: the platform must not give up on it
    await shop.pump()
    assert await invoices(shop) == 0
    assert [o["status"] for o in await shop.orders(c)] in ([], ["pending"])
    async with shop.db.transaction(readonly=True) as session:
        await bind_tenant(session, shop.tenant["id"])
        waiting = (await session.execute(select(OutboxEvent).where(OutboxEvent.topic == "connector.delivery"))).scalars()
        assert [e.status for e in waiting] == ["pending"]  # to be tried again, not dead


async def test_the_first_poll_does_not_seal_the_stores_history_unless_asked(shop):
    """A connection's cursor starts at its creation, or at ``backfill_since``: an order paid before it is
    history. (The simulator's clock cannot go back, so "before" is shown with a backfill date after it.)"""
    from datetime import datetime, timedelta, timezone
    sim = Sim("shopify")
    try:
        creds = sim.credentials
        old = await sim.call("POST", "/orders", json={"currency": "CDF", "line_items": [DRC_LINE],
                                                      "financial_status": "paid"})
        later = (datetime.now(timezone.utc) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
        secrets = {"access_token": creds["access_token"], "webhook_secret": SIM_SECRET}
        c = await shop.connect("shopify", secrets, shop="history.myshopify.com", api_base_url=sim.url,
                               backfill_since=later)
        result = await poll(shop, c["id"])
        assert result.error is None and result.seen == 0 and await invoices(shop) == 0
        await shop.client.delete(f"/v1/connections/{c['id']}", headers=shop.headers)
        c = await shop.connect("shopify", secrets, shop="history.myshopify.com", api_base_url=sim.url,
                               backfill_since="2000-01-01T00:00:00Z")
        await poll(shop, c["id"])
        await pump_until_quiet(shop)
        [row] = await shop.orders(c)
        assert row["order_id"] == str(old["id"]) and row["status"] == "invoiced"
    finally:
        await sim.close()


async def test_deeply_nested_bodies_are_a_no_op_not_a_500(shop):
    c = await shop.connect("mercadolibre", {"client_id": "1", "client_secret": "s", "refresh_token": "r"},
                           shop="123")
    r = await shop.client.post(c["webhook_url"], content=b"[" * 100_000, headers={"Content-Type": "application/json"})
    assert r.status_code == 200 and r.json()["note"].startswith("ignored"), r.text


async def test_new_tokens_keep_the_connection_and_its_orders(shop):
    c = await shop.connect("shopify", SHOPIFY)
    await deliver(shop, c, dumps_order(order("paid_exclusive")))
    await shop.pump()
    r = await shop.client.patch(f"/v1/connections/{c['id']}", json={"credentials": {
        "access_token": "shpat_rotated", "webhook_secret": "new-secret"}}, headers=shop.headers)
    assert r.status_code == 200 and r.json()["id"] == c["id"] and "shpat_rotated" not in r.text
    assert r.json()["orders"]["invoiced"] == 1
    # The old secret no longer verifies, the new one does.
    assert (await shop.post_webhook(c, dumps_order(order("pending")), shopify_headers("orders/create"),
                                    secret=SECRET)).status_code == 401
    assert (await shop.post_webhook(c, dumps_order(order("pending")), shopify_headers("orders/create"),
                                    secret="new-secret")).status_code == 200
    r = await shop.client.patch(f"/v1/connections/{c['id']}", json={"credentials": {"code": "abc"}},
                                headers=shop.headers)
    assert r.status_code == 422 and "credentials" in r.text, r.text
