"""A webhook answered while the database is down is still invoiced after recovery: the delivery waits in the
API process's spool (fsynced files), the platform gets its 2xx, and the drain stores it once the database
is back (PostgreSQL made unreachable for real: connections cut and refused)."""
from __future__ import annotations

import asyncio

import psycopg
import pytest

from stalela.connectors import spool
from tests.connectors.conftest import open_shop, shopify_headers
from tests.connectors.test_processing import SECRET, SHOPIFY, dumps_order, invoices, order

TERMINATE = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"


@pytest.mark.parametrize("fresh_database_url", ["postgres"], indirect=True)
async def test_a_webhook_answered_during_an_outage_is_invoiced_after_recovery(fresh_database_url, postgres_server,
                                                                             tmp_path):
    name = fresh_database_url.rsplit("/", 1)[1]

    def admin(*statements: str) -> None:
        with psycopg.connect(postgres_server.admin_url, autocommit=True) as conn:
            for sql in statements:
                conn.execute(sql.format(name=name))

    try:
        async for shop in open_shop(fresh_database_url, tmp_path):
            c = await shop.connect("shopify", SHOPIFY)
            admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false', TERMINATE)
            body = dumps_order(order("paid_exclusive"))
            r = await shop.post_webhook(c, body, shopify_headers("orders/paid"), secret=SECRET)
            assert r.status_code == 200, r.text
            assert r.json()["note"].startswith("spooled")
            # A forged delivery during the outage is spooled too (the secret is out of reach)...
            forged = await shop.post_webhook(c, dumps_order(order("paid_exclusive", id=6666)),
                                             shopify_headers("orders/paid"), secret="forged")
            assert forged.status_code == 200
            directory = shop.settings.effective_connectors_spool_dir
            assert len(spool.pending(directory)) == 2
            admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            # The API process's drainer (every 2 s) stores what waited, checking signatures now.
            for _ in range(100):
                if not spool.pending(directory):
                    break
                await asyncio.sleep(0.1)
            assert spool.pending(directory) == []
            await shop.pump()
            [row] = await shop.orders(c)  # ...and dropped when drained: its signature does not match
            assert row["order_id"] == "5001" and row["status"] == "invoiced"
            assert await invoices(shop) == 1
    finally:
        admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
