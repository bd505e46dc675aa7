"""End to end through the platform simulators over real HTTP: exactly one invoice per order whatever the
platform drops, duplicates or reorders; the poll catches what webhooks missed; write-back lands on the
platform; WooCommerce's disabled webhook is re-enabled; Mercado Libre's rotating tokens and packs."""
from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from stalela.connectors import polling
from stalela.connectors.repository import ConnectionRepository
from stalela.fiscal.invoices.models import Invoice
from stalela.tenancy.context import bind_platform, bind_tenant
from tests.connectors.live import SIM_SECRET, Sim, pump_until_quiet, served
from tests.support.server import free_port

DRC_LINE = {"title": "Sac de riz 25 kg", "price": "45000.00", "quantity": 1,
            "tax_lines": [{"title": "TVA", "rate": "0.16"}]}


async def invoices(shop) -> int:
    async with shop.db.transaction(readonly=True) as session:
        await bind_tenant(session, shop.tenant["id"])
        return (await session.execute(select(func.count()).select_from(Invoice))).scalar()


async def poll(shop, connection_id: str) -> polling.PollResult:
    async with shop.db.transaction(readonly=True) as session:
        await bind_platform(session)
        connection = await ConnectionRepository(session).get(connection_id)
    return await polling.poll_one(shop.db, shop.settings, connection)


async def test_100_orders_with_30_dropped_and_20_duplicated_and_shuffled_give_exactly_100_invoices(shop):
    sim = Sim("shopify", time_scale=3600)
    try:
        async with served(shop.app) as base:
            creds = sim.credentials
            c = await shop.connect("shopify", {"access_token": creds["access_token"], "webhook_secret": SIM_SECRET},
                                   shop=creds["shop_domain"], api_base_url=sim.url)
            await sim.call("POST", "/webhooks", json={"address": base + c["webhook_url"],
                                                      "topics": ["orders/paid"]})
            await sim.call("POST", "/faults", json={"drop": 0.3, "duplicate": 0.2, "reorder": True, "seed": 20})
            ids = []
            for n in range(100):
                order = await sim.call("POST", "/orders", json={"currency": "CDF", "line_items": [
                    {**DRC_LINE, "quantity": 1 + n % 3}], "financial_status": "pending"})
                await sim.call("POST", f"/orders/{order['id']}/pay")
                ids.append(order["id"])
            await sim.call("POST", "/flush")
            await sim.settled()
            deliveries = await sim.call("GET", "/deliveries")
            dropped = {d["order_id"] for d in deliveries if d["outcome"] == "dropped"}
            assert 15 <= len(dropped) <= 45, len(dropped)  # about 30 of 100 never reached us
            await pump_until_quiet(shop)
            assert await invoices(shop) == 100 - len(dropped)
            # The poll catches every order whose webhook was lost, and re-sees the others for nothing.
            result = await poll(shop, c["id"])
            assert result.error is None and result.seen == 100 and result.changed == len(dropped)
            await pump_until_quiet(shop)
            assert await invoices(shop) == 100
            rows = await shop.orders(c, limit=100)
            assert {r["status"] for r in rows} == {"invoiced"} and len({r["invoice_id"] for r in rows}) == 100
            # A second poll and replayed deliveries change nothing.
            assert (await poll(shop, c["id"])).changed == 0
            await pump_until_quiet(shop)
            assert await invoices(shop) == 100
            # Write-back: every order carries its fiscal number as a metafield.
            for order_id in ids[:10]:
                seen = await sim.call("GET", f"/orders/{order_id}")
                fields = {(m["namespace"], m["key"]): m["value"] for m in seen["metafields"]}
                mine = next(r for r in rows if r["order_id"] == str(order_id))
                assert fields[("stalela", "fiscal_number")] == mine["fiscal_number"]
                assert "/verify/" in fields[("stalela", "verify_url")]
            assert all(r["write_back"] == "done" for r in await shop.orders(c, limit=100))
    finally:
        await sim.close()


async def test_a_stale_shopify_retry_after_a_refund_reads_the_order_again(shop):
    """The refund's webhook is lost; Shopify's retry of ``orders/paid`` carries the original body hours later.
    The connector sees it is older than what it knows only if it knew: here it did not, so the payload is used
    (an invoice), and the poll later sees the refund: a credit note. Nothing is lost, nothing doubled."""
    sim = Sim("shopify", time_scale=3600)
    try:
        async with served(shop.app) as base:
            creds = sim.credentials
            c = await shop.connect("shopify", {"access_token": creds["access_token"], "webhook_secret": SIM_SECRET},
                                   shop=creds["shop_domain"], api_base_url=sim.url)
            await sim.call("POST", "/webhooks", json={"address": base + c["webhook_url"]})
            order = await sim.call("POST", "/orders", json={"currency": "CDF", "line_items": [DRC_LINE],
                                                            "financial_status": "pending"})
            await sim.call("POST", f"/orders/{order['id']}/pay")
            await sim.settled()
            await pump_until_quiet(shop)
            await sim.call("POST", "/faults", json={"drop": 1.0})
            await sim.call("POST", f"/orders/{order['id']}/refund")
            await sim.settled()
            await sim.call("POST", "/faults", json={})
            await pump_until_quiet(shop)
            [row] = await shop.orders(c)
            assert row["status"] == "invoiced"
            await poll(shop, c["id"])
            await pump_until_quiet(shop)
            [row] = await shop.orders(c)
            assert row["status"] == "credited" and row["credit_note_id"]
            assert await invoices(shop) == 2
    finally:
        await sim.close()


async def test_woocommerce_disabled_webhook_is_re_enabled_and_the_poll_invoices_what_it_missed(shop):
    sim = Sim("woocommerce")
    port = free_port()
    try:
        creds = sim.credentials
        c = await shop.connect("woocommerce", {**creds, "webhook_secret": "wc-secret"}, shop="https://tienda.example",
                               api_base_url=sim.url)
        # Our server is down: every delivery fails, WooCommerce never retries and disables the webhook.
        hook = await sim.call("POST", "/webhooks", json={"address": f"http://127.0.0.1:{port}{c['webhook_url']}",
                                                         "secret": "wc-secret"})
        # The merchant tells us the webhook's id (WooCommerce's admin shows it) so that polls can check it.
        r = await shop.client.patch(f"/v1/connections/{c['id']}", json={"webhook_id": str(hook["id"])},
                                    headers=shop.headers)
        assert r.status_code == 200 and r.json()["webhook_id"] == str(hook["id"]), r.text
        r = await shop.client.patch(f"/v1/connections/{c['id']}", json={"options": {"no_such_option": 1}},
                                    headers=shop.headers)
        assert r.status_code == 422 and r.json()["code"] == "connection_options_invalid"
        for _ in range(6):
            o = await sim.call("POST", "/orders", json={"currency": "CDF", "status": "pending", "line_items": [
                {"name": "Sac de riz", "quantity": 1, "subtotal": "45000.00", "total": "45000.00",
                 "total_tax": "7200.00", "taxes": [{"id": 1, "total": "7200.00", "subtotal": "7200.00"}]}],
                "tax_lines": [{"rate_id": 1, "label": "TVA", "rate_percent": 16, "tax_total": "7200.00",
                               "shipping_tax_total": "0.00"}]})
            await sim.call("POST", f"/orders/{o['id']}/pay")
        await sim.settled()
        auth = (creds["consumer_key"], creds["consumer_secret"])
        assert (await sim.control.get(f"/wp-json/wc/v3/webhooks/{hook['id']}", auth=auth)).json()["status"] == "disabled"
        async with served(shop.app, port):
            result = await poll(shop, c["id"])
            assert result.error is None and result.alerts and "re-enabled" in result.alerts[0]
            await pump_until_quiet(shop)
            rows = await shop.orders(c)
            assert len(rows) == 6 and {r["status"] for r in rows} == {"invoiced"}, rows
            await sim.settled()  # the write-back's own order.updated echoes, delivered to us now
            await pump_until_quiet(shop)
            assert (await sim.control.get(f"/wp-json/wc/v3/webhooks/{hook['id']}", auth=auth)).json()["status"] \
                == "active"
            assert await invoices(shop) == 6
            seen = await sim.call("GET", f"/orders/{rows[0]['order_id']}")
            assert any(m["key"] == "_stalela_fiscal_number" for m in seen["meta_data"])
            assert len([n for n in seen["notes"] if "Stalela" in n["note"]]) == 1
            r = await shop.client.get(f"/v1/connections/{c['id']}", headers=shop.headers)
            assert "re-enabled" in (r.json()["last_error"] or "")
    finally:
        await sim.close()
