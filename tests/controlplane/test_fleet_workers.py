"""The background work of the dedicated databases (controlplane/dataplane.py): a dedicated tenant's outbox is
served by ``background()``, promptly even when its database's worker has backed off (the control plane's
NOTIFY on PostgreSQL), and an idle fleet holds no connection."""
from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from stalela.workers import background
from tests.controlplane.conftest import provisioned, seal
from tests.controlplane.fleet_support import eventually, tier_world
from tests.webhooks.support import Receiver


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def _workers(app) -> dict:  # noqa: ANN001
    """The background's DatabaseWorkers, by placement (found through their tasks' coroutines' frames)."""
    found = {}
    for task in asyncio.all_tasks():
        if task.get_name().startswith("dedicated:"):
            worker = task.get_coro().cr_frame.f_locals.get("self") if task.get_coro().cr_frame else None
            if worker is not None:
                found[task.get_name().removeprefix("dedicated:")] = worker
    return found


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

            seen: dict = {}

            async def none_held(placement: str) -> bool:
                # One database at a time: each polls on its own clock, so all three are rarely between polls
                # at the same instant on a loaded machine. What is held is kept for the failure message.
                pool = fleet.open_databases()[placement].engine.pool
                seen["pool"] = pool.status()
                if pool.checkedout() + pool.checkedin():
                    return False
                if not postgres:
                    return True
                # Asked as the session's superuser, not through the app engine: its SET ROLE sees every other
                # session as '<insufficient privilege>', so an autovacuum worker of a freshly written database
                # (not ours, and gone on its own) could not be told from a held connection.
                conn = await asyncpg.connect(make_url(fresh_database_url).set(drivername="postgresql")
                                             .render_as_string(hide_password=False))
                try:
                    rows = await conn.fetch("SELECT pid, backend_type, usename, application_name, state, query "
                                            "FROM pg_stat_activity WHERE datname = $1",
                                            make_url(placement).database)
                finally:
                    await conn.close()
                seen["server"] = [tuple(r) for r in rows]
                return not [r for r in rows if r["backend_type"] == "client backend"]

            passes = {p: w.passes for p, w in _workers(app).items()}
            for placement in fleet.open_databases():
                try:
                    await eventually(lambda: none_held(placement), timeout=45.0, every=0.01)  # loaded CI polls slower
                except AssertionError as exc:
                    workers = {t.get_name(): t.done() for t in asyncio.all_tasks()
                               if t.get_name().startswith("dedicated")}
                    raise AssertionError(f"{exc}; {placement}: last seen {seen}; workers: {workers}") from None
            # The workers were polling all along (an empty pool of a dead worker would prove nothing).
            workers = _workers(app)
            assert all(not task.done() for task in asyncio.all_tasks() if task.get_name().startswith("dedicated:"))
            assert all(workers[p].passes > n for p, n in passes.items()), (passes, {p: w.passes for p, w in workers.items()})
            # Still served: a new seal goes through (the pool opens again on demand).
            tenant = tenants[0]
            r = await client.get(f"/v1/tenants/{tenant['id']}", headers=operator_headers)
            assert r.json()["status"] == "active"


async def test_a_pass_that_drains_the_outbox_is_not_followed_by_an_empty_one(tier_client, tier_app, tier_settings,
                                                                            operator_headers):
    """A busy dedicated database gets a few events per pass: a pass that took fewer than a batch says no
    more is waiting, so its worker waits for the next wake-up or poll instead of claiming again at once."""
    from stalela.controlplane.dataplane import DatabaseWorker

    tenant, headers = await provisioned(tier_client, tier_app, operator_headers)
    database = (await tier_client.get(f"/v1/tenants/{tenant['id']}", headers=operator_headers)).json()["database"]
    await seal(tier_client, tenant, headers)
    worker = DatabaseWorker(tier_app.state.db, tier_settings, database)
    assert await worker.run_once() == (True, False)  # the seal's events, fewer than a batch
    assert await worker.run_once() == (False, False)
    await seal(tier_client, tenant, headers)
    one_at_a_time = DatabaseWorker(tier_app.state.db, tier_settings.model_copy(update={"outbox_batch_size": 1}),
                                   database)
    assert await one_at_a_time.run_once() == (True, True)  # a full batch: more may be due now
