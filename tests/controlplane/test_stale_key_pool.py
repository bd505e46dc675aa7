"""A stale API key (its last use older than a minute) is touched in a transaction of its own, after the
request's: never while the request's transaction holds its connections. With a dedicated tenant's pool of one
connection, the touch opened inside the read transaction waited for the connection its own request held, and
every first request of a stale key stalled until the pool's timeout (the routing bench's stalled rounds)."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import text

from stalela.auth.service import API_KEYS
from stalela.db.base import utcnow
from tests.conftest import make_settings
from tests.controlplane.conftest import dedicated_template, provisioned, seal
from tests.support.invoices import sample_invoice

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


@pytest.fixture
def tier_settings(database_url, tmp_path):
    return make_settings(database_url, tmp_path, dedicated_database_url_template=dedicated_template(database_url, tmp_path),
                         dedicated_pool_size=1)


async def _make_stale(app, tenant_id: str) -> None:
    async with app.state.db.engine.begin() as conn:
        await conn.execute(text("SELECT set_config('stalela.platform', 'on', true)"))
        await conn.execute(text("UPDATE api_keys SET last_used_at = :t WHERE tenant_id = :id"),
                           {"t": utcnow() - timedelta(minutes=5), "id": tenant_id})
    API_KEYS.clear()


async def test_a_stale_key_never_waits_for_its_own_connection(tier_client, tier_app, operator_headers):
    tenant, headers = await provisioned(tier_client, tier_app, operator_headers)
    await seal(tier_client, tenant, headers)
    for request in (lambda: tier_client.get("/v1/invoices", headers=headers),  # the request's read transaction
                    lambda: tier_client.post("/v1/invoices", json=sample_invoice(tenant["outlet"]),
                                             headers=headers),  # sealing: a short read transaction of its own
                    # A read failing after authentication is a use of the key too.
                    lambda: tier_client.get("/v1/invoices/inv_missing", headers=headers)):
        await _make_stale(tier_app, tenant["id"])
        r = await asyncio.wait_for(request(), timeout=10)  # the pool's timeout is 30 s
        assert r.status_code in (200, 201, 404), r.text
        async with tier_app.state.db.engine.connect() as conn:
            await conn.execute(text("SELECT set_config('stalela.platform', 'on', false)"))
            used = (await conn.execute(text("SELECT last_used_at FROM api_keys WHERE tenant_id = :id"),
                                       {"id": tenant["id"]})).scalar()
        assert utcnow() - used < timedelta(seconds=30), "the key's last use was not recorded"
