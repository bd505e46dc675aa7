"""Health of the fleet: /readyz names a dedicated database that is behind or unreachable without failing the
process (unless configured), the /ops Databases page lists every database, and the per-process gauge of
dedicated connections follows the fleet's pools."""
from __future__ import annotations

import asyncio
import dataclasses

import psycopg
from prometheus_client import REGISTRY, generate_latest
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from stalela.controlplane.dataplane import janitor
from stalela.db.engine import create_engine
from stalela.health import fleet as fleet_health
from stalela.migrations import head_revisions
from stalela.observability.metrics import DEDICATED_CONNECTIONS
from tests.controlplane.conftest import provisioned, seal
from tests.dashboard.test_ops import operator


@pytest.fixture(autouse=True)
def no_cache(monkeypatch):
    monkeypatch.setattr(fleet_health, "FRESH_SECONDS", 0.0)  # every probe checks again


async def _set_revision(url: str, revision: str) -> None:
    engine = create_engine(url)  # the owner, as migrations run (the app role may not touch alembic_version)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    finally:
        await engine.dispose()


async def test_readyz_reports_dedicated_databases(tier_client, tier_app, operator_headers):
    tenant, headers = await provisioned(tier_client, tier_app, operator_headers)
    await seal(tier_client, tenant, headers)
    r = await tier_client.get("/readyz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok" and body["dedicated"]["known"] >= 1
    assert body["dedicated"]["open"] >= 1 and body["dedicated"]["failing"] == []

    database = (await tier_client.get(f"/v1/tenants/{tenant['id']}", headers=operator_headers)).json()["database"]
    own = tier_app.state.db.fleet.url_of(database)
    (head,) = head_revisions()
    await _set_revision(own, "0001")
    try:
        r = await tier_client.get("/readyz")
        assert r.status_code == 200 and r.json()["status"] == "degraded"
        (failing,) = [f for f in r.json()["dedicated"]["failing"] if f["database"] == database.rsplit("/", 1)[-1]]
        assert "0001" in failing["error"]
        tier_app.state.settings.readyz_require_dedicated = True
        r = await tier_client.get("/readyz")
        assert r.status_code == 503 and r.json()["status"] == "unavailable"
    finally:
        tier_app.state.settings.readyz_require_dedicated = False
        await _set_revision(own, head)
    assert (await tier_client.get("/readyz")).json()["status"] == "ok"


async def test_readyz_names_an_unreachable_database(tier_client, tier_app, operator_headers, database_url):
    if not database_url.startswith("postgres"):
        pytest.skip("refusing connections is a PostgreSQL server's doing")
    tenant, headers = await provisioned(tier_client, tier_app, operator_headers)
    await seal(tier_client, tenant, headers)
    database = (await tier_client.get(f"/v1/tenants/{tenant['id']}", headers=operator_headers)).json()["database"]
    name = make_url(database).database
    admin = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
    try:
        await tier_app.state.db.fleet.database(database).engine.dispose()
        # The pool holds nothing now: the probe checks only pools in use, so use it (and fail) first.
        r = await tier_client.post("/v1/invoices", json={}, headers=headers)
        assert r.status_code in (422, 503)
        fleet_health.health_of(tier_app.state.db).checks.clear()
        await fleet_health.health_of(tier_app.state.db).check(database)
        r = await tier_client.get("/readyz")
        assert r.status_code == 200 and r.json()["status"] == "degraded"
        assert [f["database"] for f in r.json()["dedicated"]["failing"]] == [name]
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


async def test_ops_databases_page(tier_client, tier_app, operator_headers):
    tenant, headers = await provisioned(tier_client, tier_app, operator_headers)
    await seal(tier_client, tenant, headers)
    database = (await tier_client.get(f"/v1/tenants/{tenant['id']}", headers=operator_headers)).json()["database"]
    ops = await operator(tier_app)
    try:
        page = await ops.get("/ops/databases")
        assert page.status_code == 200, page.text
        assert 'href="/ops/databases" aria-current="page"' in page.text
        table = page.text.split('data-testid="databases-table"', 1)[1].split("</table>", 1)[0]
        rows = table.split("<tr data-database=")[1:]
        assert "control plane" in rows[0] and "at head" in rows[0]
        (row,) = [r for r in rows if tenant["id"] in r]
        assert database.rsplit("/", 1)[-1] in row and "dedicated" in row and "at head" in row
        assert ">ok<" in row
    finally:
        await ops.aclose()


async def test_gauge_of_dedicated_connections(tier_client, tier_app, operator_headers):
    tenant, headers = await provisioned(tier_client, tier_app, operator_headers)
    await seal(tier_client, tenant, headers)
    fleet = tier_app.state.db.fleet
    assert fleet.connections() > 0
    fleet.options = dataclasses.replace(fleet.options, idle_seconds=3.0)  # a round every 1.5 s
    task = asyncio.create_task(janitor(tier_app.state.db))
    try:
        await asyncio.sleep(1.8)  # one round, before the pool is idle
        assert DEDICATED_CONNECTIONS._value.get() == fleet.connections() > 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert b"\ndedicated_database_connections " in generate_latest(REGISTRY)
