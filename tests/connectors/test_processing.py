"""Orders decided from webhook bodies, without a platform API (Shopify sends the whole, signed order): sealed
once whatever the duplicates, a newer refund gives a credit note, a stale paid payload after the refund does
not re-invoice, a mismatch parks with its difference, a person dismisses or retries."""
from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select

from stalela.fiscal.invoices.models import Invoice
from stalela.tenancy.context import bind_tenant
from tests.connectors.conftest import dumps, shopify_headers

FIXTURES = Path(__file__).parent / "mapping" / "fixtures" / "shopify"
SECRET = "hush-hush"
SHOPIFY = {"access_token": "shpat_x", "webhook_secret": SECRET}


def order(name: str, **changes) -> dict:
    data = json.loads((FIXTURES / f"{name}.order.json").read_text(), parse_float=Decimal)
    data.update(changes)
    return data


async def invoices(shop) -> int:
    async with shop.db.transaction(readonly=True) as session:
        await bind_tenant(session, shop.tenant["id"])
        return (await session.execute(select(func.count()).select_from(Invoice))).scalar()


async def deliver(shop, connection, body: dict, topic: str = "orders/paid", event_id: str | None = None):
    r = await shop.post_webhook(connection, dumps(body) if not isinstance(body, bytes) else body,
                                shopify_headers(topic, event_id), secret=SECRET)
    assert r.status_code == 200, r.text
    return r.json()


def dumps_order(o: dict) -> bytes:
    return json.dumps(o, default=str, separators=(",", ":")).encode()


async def test_a_paid_order_is_invoiced_once_whatever_the_duplicates(shop):
    c = await shop.connect("shopify", SHOPIFY)
    paid = order("paid_exclusive")
    for event in ("e1", "e2", "e3"):  # three events (orders/create, orders/paid, orders/updated) of one state
        await deliver(shop, c, dumps_order(paid), event_id=event)
    await deliver(shop, c, dumps_order(paid), event_id="e1")  # and a retry
    await shop.pump()
    [row] = await shop.orders(c)
    assert row["status"] == "invoiced" and row["fiscal_number"] and row["difference"] == "0.00"
    assert await invoices(shop) == 1
    r = await shop.client.get(f"/v1/invoices/{row['invoice_id']}", headers=shop.headers)
    assert r.json()["totals"]["total"] == paid["total_price"] and r.json()["reference"] == "shopify:5001"


async def test_a_refund_after_the_invoice_gives_a_credit_note_and_a_stale_retry_changes_nothing(shop):
    c = await shop.connect("shopify", SHOPIFY)
    paid = order("refunded", financial_status="paid", updated_at="2026-11-20T10:00:00-05:00")
    refunded = order("refunded", updated_at="2026-11-20T11:00:00-05:00")
    await deliver(shop, c, dumps_order(paid), event_id="paid")
    await shop.pump()
    await deliver(shop, c, dumps_order(refunded), topic="orders/updated", event_id="refund")
    await shop.pump()
    [row] = await shop.orders(c)
    assert row["status"] == "credited" and row["credit_note_id"]
    # Shopify's retry of the first event carries its original (paid) body, hours later: stale. The connector
    # reads the order again (here the API is unreachable, so the retry waits in the outbox: nothing is sealed).
    await deliver(shop, c, dumps_order(paid), event_id="paid-retry")
    await shop.pump()
    assert await invoices(shop) == 2  # the invoice and its credit note, nothing more
    [row] = await shop.orders(c)
    assert row["status"] == "credited"


async def test_refunded_before_any_invoice_gives_none_even_out_of_order(shop):
    c = await shop.connect("shopify", SHOPIFY)
    paid = order("refunded", financial_status="paid", updated_at="2026-11-20T10:00:00-05:00")
    refunded = order("refunded", updated_at="2026-11-20T11:00:00-05:00")
    await deliver(shop, c, dumps_order(refunded), topic="orders/updated", event_id="refund")
    await shop.pump()
    [row] = await shop.orders(c)
    assert row["status"] == "skipped" and row["reason"] == "refunded"
    await deliver(shop, c, dumps_order(paid), event_id="paid")  # the older paid event arrives last
    await shop.pump()
    assert await invoices(shop) == 0


async def test_a_mismatch_parks_with_its_difference_and_a_person_dismisses_it(shop):
    c = await shop.connect("shopify", SHOPIFY)
    await deliver(shop, c, dumps_order(order("totals_mismatch")))
    await shop.pump()
    [row] = await shop.orders(c, status="parked")
    assert (row["reason"], row["difference"], row["platform_total"]) == ("totals_mismatch", "1.00", "7199.00")
    assert await invoices(shop) == 0
    base = f"/v1/connections/{c['id']}/orders/{row['order_key']}"
    r = await shop.client.post(f"{base}/dismiss", headers=shop.headers)
    assert r.status_code == 200 and r.json()["status"] == "dismissed"
    assert (await shop.client.post(f"{base}/dismiss", headers=shop.headers)).json()["code"] == "order_not_parked"
    # Whatever the platform sends afterwards, a dismissed order is a person's now.
    fixed = order("totals_mismatch", updated_at="2026-11-21T10:00:00-05:00", total_price="7200.00")
    await deliver(shop, c, dumps_order(fixed))
    await shop.pump()
    assert await invoices(shop) == 0
    r = await shop.client.get(f"/v1/connections/{c['id']}", headers=shop.headers)
    assert r.json()["orders"]["dismissed"] == 1


async def test_a_refused_seal_parks_and_consumes_no_number(shop):
    """The merchant invoiced order 6001 by hand first (same reference): the pipeline refuses a second invoice
    with that reference, the order parks with the refusal's code, and the refusal takes no fiscal number."""
    from tests.support.invoices import sample_invoice
    by_hand = await shop.client.post("/v1/invoices", json=sample_invoice(shop.outlet, reference="shopify:6001"),
                                     headers=shop.headers)
    assert by_hand.status_code == 201, by_hand.text
    c = await shop.connect("shopify", SHOPIFY)
    await deliver(shop, c, dumps_order(order("paid_exclusive", id=6001)))
    await shop.pump()
    [row] = await shop.orders(c)
    assert row["status"] == "parked" and row["reason"].startswith("rejected:"), row
    await deliver(shop, c, dumps_order(order("paid_exclusive", id=6002)))
    await shop.pump()
    rows = {o["order_id"]: o for o in await shop.orders(c)}
    r = await shop.client.get(f"/v1/invoices/{rows['6002']['invoice_id']}", headers=shop.headers)
    assert r.json()["counter"] == 2  # the hand-made one, then this one: the refused seal took no number


async def test_the_connection_shows_its_counts(shop):
    c = await shop.connect("shopify", SHOPIFY)
    await deliver(shop, c, dumps_order(order("paid_exclusive")))
    await deliver(shop, c, dumps_order(order("totals_mismatch")))
    await deliver(shop, c, dumps_order(order("pending")))
    await shop.pump()
    r = await shop.client.get(f"/v1/connections/{c['id']}", headers=shop.headers)
    counts = r.json()["orders"]
    assert (counts["invoiced"], counts["parked"], counts["pending"]) == (1, 1, 1), counts  # pending: not paid yet
    assert r.json()["last_webhook_at"] is not None


async def test_the_analytics_summary_shows_orders_against_invoices(shop):
    from datetime import date, timedelta
    c = await shop.connect("shopify", SHOPIFY)
    await deliver(shop, c, dumps_order(order("paid_exclusive")))
    await deliver(shop, c, dumps_order(order("totals_mismatch")))
    await deliver(shop, c, dumps_order(order("pending")))
    await shop.pump()
    today = date.today()
    r = await shop.client.get("/v1/analytics/summary", params={
        "from": (today - timedelta(days=1)).isoformat(), "to": (today + timedelta(days=1)).isoformat()},
        headers=shop.headers)
    assert r.status_code == 200, r.text
    figures = r.json()["connectors"]
    assert (figures["orders"], figures["invoiced"], figures["parked"], figures["pending"]) == (3, 1, 1, 1)
    assert figures["invoiced_rate"] == "0.5000"  # one of the two paid orders
    assert figures["by_connection"][0]["connection_id"] == c["id"]
