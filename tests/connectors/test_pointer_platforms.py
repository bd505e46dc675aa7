"""Mercado Libre and Tienda Nube send only a pointer: the order is always read back. Mercado Libre's tokens
rotate (each refresh kills the previous refresh token), so refreshes of one seller are serialised; a pack is
one purchase: one invoice, one fiscal document. Tienda Nube signs in hex and gets an owner note."""
from __future__ import annotations

import asyncio

from sqlalchemy import select

from stalela.connectors.credentials import TokenSource
from stalela.connectors.models import Connection
from stalela.tenancy.context import bind_platform
from tests.connectors.live import SIM_SECRET, Sim, pump_until_quiet, served
from tests.connectors.test_end_to_end import invoices, poll

AR_OPTIONS = {"issuer_vat_condition": "responsable_inscripto"}


async def _connection(shop, connection_id: str) -> Connection:
    async with shop.db.transaction(readonly=True) as session:
        await bind_platform(session)
        return (await session.execute(select(Connection).where(Connection.id == connection_id))).scalar_one()


async def test_mercadolibre_pack_is_one_invoice_and_tokens_rotate_one_refresh_at_a_time(ar_shop):
    shop = ar_shop
    sim = Sim("mercadolibre", time_scale=3600)
    try:
        async with served(shop.app) as base:
            creds = sim.credentials
            c = await shop.connect("mercadolibre", {k: creds[k] for k in ("client_id", "client_secret",
                                                                          "refresh_token")},
                                   shop=str(creds["user_id"]), api_base_url=sim.url, options=AR_OPTIONS)
            await sim.call("POST", "/webhooks", json={"address": base + c["webhook_url"]})
            # Two workers find the token stale at once: one refresh reaches the platform, both get its token.
            connection = await _connection(shop, c["id"])
            a, b = TokenSource(shop.db, shop.settings, connection), TokenSource(shop.db, shop.settings, connection)
            first, second = await asyncio.gather(a(True), b(True))
            assert first == second
            old = creds["refresh_token"]
            r = await sim.control.post("/oauth/token", data={"grant_type": "refresh_token", "client_id": creds["client_id"],
                                                             "client_secret": creds["client_secret"], "refresh_token": old})
            assert r.status_code == 400  # the first refresh killed it: the stored one is the new one
            # Tokens now expire after 1 s on the platform's side: a 401 makes the connector refresh.
            await sim.call("POST", "/faults", json={"token_ttl_s": 1})
            pack = 2_000_000_000_777
            ids = []
            for price in (12100, 6050):
                o = await sim.call("POST", "/orders", json={"pack_id": pack, "order_items": [
                    {"quantity": 1, "unit_price": price, "item": {"title": f"Remera {price}"}}]})
                await sim.call("POST", f"/orders/{o['id']}/pay")
                ids.append(o["id"])
            await sim.call("POST", "/clock", json={"advance_s": 5})
            await sim.settled()
            await pump_until_quiet(shop)
            [row] = await shop.orders(c)
            assert row["order_key"] == str(pack) and row["status"] == "invoiced", row
            invoice = (await shop.client.get(f"/v1/invoices/{row['invoice_id']}", headers=shop.headers)).json()
            assert invoice["totals"]["total"] == "18150.00" and len(invoice["lines"]) == 2
            seen = await sim.call("GET", f"/orders/{ids[0]}")
            assert len(seen["fiscal_documents"]) == 1  # one per pack
            assert row["write_back"] == "done" or (await shop.orders(c))[0]["write_back"] == "done"
            # The poll sees both orders of the pack again: nothing new.
            assert (await poll(shop, c["id"])).changed == 0
            assert await invoices(shop) == 1
    finally:
        await sim.close()


async def test_tiendanube_pointer_is_read_back_and_gets_an_owner_note(shop):
    sim = Sim("tiendanube", time_scale=3600)
    try:
        async with served(shop.app) as base:
            creds = sim.credentials
            c = await shop.connect("tiendanube", {"access_token": creds["access_token"], "app_secret": SIM_SECRET},
                                   shop=str(creds["store_id"]), api_base_url=sim.url)
            await sim.call("POST", "/webhooks", json={"address": base + c["webhook_url"]})
            await sim.call("POST", "/faults", json={"duplicate": 1.0, "reorder": True, "seed": 3})
            o = await sim.call("POST", "/orders", json={"currency": "CDF", "products": [
                {"name": "Pagne wax", "price": "11600.00", "quantity": 2}]})
            await sim.call("POST", f"/orders/{o['id']}/pay")
            await sim.call("POST", "/flush")
            await sim.settled()
            await pump_until_quiet(shop)
            [row] = await shop.orders(c)
            assert row["status"] == "invoiced", row
            seen = await sim.call("GET", f"/orders/{o['id']}")
            assert row["fiscal_number"] in (seen["owner_note"] or "")
            await sim.call("POST", "/flush")  # the note's own order/updated echoes, held and duplicated too
            await sim.settled()
            await pump_until_quiet(shop)
            assert await invoices(shop) == 1
    finally:
        await sim.close()


async def test_oauth_codes_are_exchanged_and_only_tokens_are_kept(shop):
    """Shopify and Tienda Nube hand out an authorisation code; the connection trades it for a token at once
    (before its transaction), keeps the token, never the code, and a spent code is refused (422 or 4xx)."""
    for platform in ("shopify", "tiendanube"):
        sim = Sim(platform)
        try:
            creds = sim.credentials
            body = {"client_id": creds["client_id"], "client_secret": creds["client_secret"], "code": creds["code"]}
            shop_name = creds.get("shop_domain") or str(creds.get("store_id"))
            c = await shop.connect(platform, body, shop=shop_name, api_base_url=sim.url)
            assert "access_token" in c["credential_kinds"] and "code" not in c["credential_kinds"]
            r = await shop.client.post("/v1/connections", json={
                "platform": platform, "shop": shop_name + "-again", "outlet_id": shop.outlet, "api_base_url": sim.url,
                "credentials": body}, headers=shop.headers)
            assert 400 <= r.status_code < 500 and r.status_code != 404, r.text  # the code was spent
            # The token works: the client reads an order with it.
            order = await sim.call("POST", "/orders", json={"currency": "CDF"})
            from stalela.connectors.platforms import client_for
            connection = await _connection(shop, c["id"])
            got = await client_for(shop.db, shop.settings, connection).fetch_order(str(order["id"]))
            assert str(got["id"]) == str(order["id"])
        finally:
            await sim.close()
