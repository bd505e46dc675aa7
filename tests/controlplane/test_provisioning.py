"""The provisioning job: a refusing server shows its error and is retried by the outbox until the job fails
visibly; a replay resumes it; two runners of one job never run a step twice."""
from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from stalela.controlplane import placement, provisioning
from stalela.outbox.dispatcher import Dispatcher
from tests.conftest import make_settings

CD = {"tax_id": "P0000001B", "jurisdiction": "CD"}


async def _control_count(db, sql: str, **params) -> int:
    async with db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT set_config('stalela.platform', 'on', false)"))
        return (await conn.execute(text(sql), params)).scalar()


@pytest.fixture
def refusing_template(fresh_database_url, tmp_path, postgres_server):
    """A placement whose server refuses: on PostgreSQL a role without CREATEDB (CREATE DATABASE is denied),
    on SQLite a directory that is a regular file (the database file cannot be opened)."""
    if fresh_database_url.startswith("sqlite"):
        (tmp_path / "not-a-dir").write_text("a file")
        yield f"sqlite:///{tmp_path}/not-a-dir/{{tenant}}.db"
        return
    role = f"stalela_nocreate_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_server.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN NOCREATEDB')
    url = make_url(fresh_database_url).set(username=role, password=None, database="DBNAME")
    yield url.render_as_string(hide_password=False).replace("DBNAME", "{tenant}")
    with psycopg.connect(postgres_server.admin_url, autocommit=True) as conn:
        conn.execute(f'DROP ROLE IF EXISTS "{role}"')


async def test_refused_step_is_retried_then_fails_visibly(fresh_database_url, tmp_path, refusing_template,
                                                         operator_headers):
    import httpx

    from stalela.app import create_app

    settings = make_settings(fresh_database_url, tmp_path, dedicated_database_url_template=refusing_template,
                             outbox_max_attempts=2, outbox_backoff_base_seconds=0.01,
                             outbox_backoff_cap_seconds=0.02)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            r = await client.post("/v1/tenants", json={"name": "Refusé SARL", "tier": "dedicated", **CD},
                                  headers=operator_headers)
            assert r.status_code == 202, r.text
            url = f"/v1/tenants/{r.json()['tenant']['id']}"
            dispatcher = Dispatcher(app.state.db, settings)

            await dispatcher.run_once()
            job = (await client.get(url, headers=operator_headers)).json()["provisioning"]
            failing = "database" if fresh_database_url.startswith("postgresql") else "migrated"
            assert job["status"] == "running" and job["error"].startswith(f"{failing}: "), job
            if failing == "database":
                assert "permission denied" in job["error"]

            for _ in range(50):  # the backoff (at most 20 ms here) makes the event due again
                await asyncio.sleep(0.05)
                await dispatcher.run_once()
                job = (await client.get(url, headers=operator_headers)).json()["provisioning"]
                if job["status"] == "failed":
                    break
            assert job["status"] == "failed" and job["error"].startswith(f"{failing}: "), job
            tenant = (await client.get(url, headers=operator_headers)).json()
            assert tenant["status"] == "provisioning"
            dead = (await client.get("/v1/ops/outbox/dead", params={"topic": provisioning.TOPIC},
                                     headers=operator_headers)).json()["data"]
            assert [e["payload"]["tenant_id"] for e in dead] == [tenant["id"]]

            # Replaying the dead event resumes the job (here: it fails again, and says so).
            r = await client.post("/v1/ops/outbox/replay", json={"topic": provisioning.TOPIC}, headers=operator_headers)
            assert r.status_code == 200, r.text
            await dispatcher.run_once()
            job = (await client.get(url, headers=operator_headers)).json()["provisioning"]
            assert job["status"] == "running" and job["attempts"] > 2


async def test_two_runners_provision_once(tier_client, tier_app, operator_headers):
    r = await tier_client.post("/v1/tenants", json={"name": "Deux SARL", "tier": "dedicated", **CD},
                               headers=operator_headers)
    tenant_id = r.json()["tenant"]["id"]
    db, settings = tier_app.state.db, tier_app.state.settings
    results = await asyncio.gather(provisioning.run(db, settings, tenant_id), provisioning.run(db, settings, tenant_id),
                                   return_exceptions=True)
    assert sorted(type(x).__name__ for x in results) == ["Busy", "str"], results
    assert await provisioning.run(db, settings, tenant_id) == "active"  # done: a late runner finds nothing to do
    got = (await tier_client.get(f"/v1/tenants/{tenant_id}", headers=operator_headers)).json()
    assert got["status"] == "active" and got["provisioning"]["status"] == "completed"
    assert got["provisioning"]["attempts"] == 4  # one per step: none ran twice
    assert await _control_count(db, "SELECT count(*) FROM signing_keys WHERE tenant_id = :t", t=tenant_id) == 1
    own = db.fleet.database(got["database"])
    assert await _control_count(own, "SELECT count(*) FROM audit_log WHERE tenant_id = :t", t=tenant_id) == 1




def test_placement_spreads_over_the_configured_servers(tmp_path):
    from stalela.config import Settings

    settings = Settings(database_url="postgresql://ctl:pw@ctl-host/stalela", data_dir=tmp_path,
                        dedicated_database_url_template="postgresql://a:pa@db-a:5432/{tenant}, "
                                                        "postgresql://b:pb@db-b:6432/{tenant}")
    assert placement.templates(settings) == ["postgresql+asyncpg://a:pa@db-a:5432/{tenant}",
                                             "postgresql+asyncpg://b:pb@db-b:6432/{tenant}"]
    used = ["postgresql+asyncpg://a@db-a:5432/stalela_x", "postgresql+asyncpg://a@db-a:5432/stalela_y"]
    chosen = placement.choose(settings, "ten_NEW", used)
    assert chosen == "postgresql+asyncpg://b@db-b:6432/stalela_ten_new"  # the least used server, no password
    assert placement.choose(settings, "ten_NEW", used, target="db-a:5432").startswith("postgresql+asyncpg://a@db-a")
    # Without a template: the control plane's own server, or files in data_dir/tenants when embedded.
    own = Settings(database_url="postgresql://ctl:pw@ctl-host/stalela", data_dir=tmp_path)
    assert placement.templates(own) == ["postgresql+asyncpg://ctl:pw@ctl-host/{tenant}"]
    embedded = Settings(database_url=f"sqlite:///{tmp_path}/stalela.db", data_dir=tmp_path)
    assert placement.templates(embedded) == [f"sqlite+aiosqlite:///{tmp_path.resolve()}/tenants/{{tenant}}.db"]
