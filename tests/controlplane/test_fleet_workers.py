"""The background work of the dedicated databases (controlplane/dataplane.py): a dedicated tenant's outbox is
served by ``background()``, promptly even when its database's worker has backed off (the control plane's
NOTIFY on PostgreSQL), and an idle fleet holds no connection."""
from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import text

from stalela.workers import background
from tests.controlplane.conftest import provisioned, seal
from tests.controlplane.fleet_support import eventually, tier_world
from tests.webhooks.support import Receiver


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def worker_started(placement: str) -> bool:
    """The supervisor names each database's task after its placement."""
    return any(t.get_name() == f"dedicated:{placement}" for t in asyncio.all_tasks())


async def test_dedicated_outbox_is_delivered_by_background(fresh_database_url, tmp_path, operator_headers, receiver):
    postgres = fresh_database_url.startswith("postgres")
    # On PostgreSQL the worker backs off far beyond the test's patience: only the wake-up can deliver in time.
    async with tier_world(fresh_database_url, tmp_path, dedicated_poll_max_seconds=60 if postgres else 0.2) as (app, client):
        async with background(app.state.db, app.state.settings):
            # Provisioned by the background itself (its tenant.provisioning handler on the control plane).
            r = await client.post("/v1/tenants", json={"name": "Dédié SARL", "tax_id": "D0000001B", "tier": "dedicated"},
                                  headers=operator_headers)
            assert r.status_code == 202, r.text
            tenant, headers = r.json()["tenant"], {"Authorization": f"Bearer {r.json()['api_key']}"}

            async def active() -> bool:
                r = await client.get(f"/v1/tenants/{tenant['id']}", headers=operator_headers)
                return r.json()["status"] == "active"

            await eventually(active, timeout=60.0, every=0.2)
            r = await client.post("/v1/outlets", json={"code": "MAIN", "name": "Main"}, headers=headers)
            assert r.status_code == 201, r.text
            tenant["outlet"] = r.json()["id"]
            r = await client.post("/v1/webhook-endpoints", json={"url": receiver.url("/hook"),
                                                                  "event_types": ["invoice.sealed"]}, headers=headers)
            assert r.status_code == 201, r.text
            database = (await client.get(f"/v1/tenants/{tenant['id']}", headers=operator_headers)).json()["database"]
            await eventually(lambda: worker_started(database), timeout=15.0)
            # Let the worker back off: 0.05 s doubling, its next poll is > 6 s away by now.
            await asyncio.sleep(7.0 if postgres else 1.0)
            invoice = await seal(client, tenant, headers)
            hits = await eventually(lambda: receiver.at("/hook"), timeout=5.0)
            assert invoice["id"] in json.dumps(json.loads(hits[0].body)["data"])
        # The event is settled in the tenant's own database, and the control plane's outbox never saw it.
        own = app.state.db.fleet.database(database)
        async with own.engine.connect() as conn:
            if postgres:
                await conn.execute(text("SELECT set_config('stalela.platform', 'on', false)"))
            statuses = (await conn.execute(text("SELECT status FROM outbox WHERE tenant_id = :t AND topic = "
                                                "'invoice.sealed'"), {"t": tenant["id"]})).scalars().all()
        assert statuses == ["done"]
        async with app.state.db.engine.connect() as conn:
            if postgres:
                await conn.execute(text("SELECT set_config('stalela.platform', 'on', false)"))
            assert (await conn.execute(text("SELECT count(*) FROM outbox WHERE tenant_id = :t AND topic = "
                                            "'invoice.sealed'"), {"t": tenant["id"]})).scalar() == 0


async def test_idle_fleet_holds_no_connections(fresh_database_url, tmp_path, operator_headers):
    postgres = fresh_database_url.startswith("postgres")
    async with tier_world(fresh_database_url, tmp_path, dedicated_pool_idle_seconds=1.0,
                          dedicated_poll_max_seconds=0.4) as (app, client):
        tenants = []
        for n in range(3):
            tenant, headers = await provisioned(client, app, operator_headers, tax_id=f"D000000{n}B")
            await seal(client, tenant, headers)
            tenants.append(tenant)
        fleet = app.state.db.fleet
        assert fleet.connections() > 0
        async with background(app.state.db, app.state.settings):
            # The workers keep polling (every 0.4 s at most) and yet the pools empty once idle for 1 s.
            await eventually(lambda: len(fleet.open_databases()) == 3, timeout=15.0)

            async def none_held() -> bool:
                if fleet.connections():
                    return False
                if not postgres:
                    return True
                names = [d.rsplit("/", 1)[1] for d in fleet.open_databases()]
                async with app.state.db.engine.connect() as conn:
                    held = (await conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = ANY(:n)"),
                                               {"n": names})).scalar()
                return held == 0

            await eventually(none_held, timeout=15.0, every=0.01)
            # Still served: a new seal goes through (the pool opens again on demand).
            tenant = tenants[0]
            r = await client.get(f"/v1/tenants/{tenant['id']}", headers=operator_headers)
            assert r.json()["status"] == "active"
