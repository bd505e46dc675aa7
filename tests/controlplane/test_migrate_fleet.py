"""``stalela migrate`` across the fleet: the control plane and every dedicated database (20 on PostgreSQL, each a
real database made by the provisioning code), one left behind at an older revision and one that cannot be
reached: the reachable ones are migrated, the failure is reported with exit 1, and a second run finishes."""
from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from stalela.controlplane import provisioning
from stalela.db.engine import create_engine
from stalela.migrations import alembic_config, head_revisions, upgrade
from tests.controlplane.conftest import dedicated_template
from tests.controlplane.fleet_support import tier_world
from tests.conftest import MASTER_KEY
from tests.support.cli import CLI, cli_in


async def _downgrade(url: str) -> None:
    """PostgreSQL: one revision down, for real. SQLite cannot rebuild a referenced table while its foreign keys
    are enforced, so there the tenant's file is replaced by one migrated to the revision before head."""
    from alembic import command
    from alembic.script import ScriptDirectory

    if url.startswith("sqlite"):
        (previous,) = {ScriptDirectory.from_config(alembic_config()).get_revision(h).down_revision
                       for h in head_revisions()}
        Path(make_url(url).database).unlink()
        await upgrade(url, revision=previous)
        return
    engine = create_engine(url)
    cfg = alembic_config()
    try:
        async with engine.begin() as conn:
            def run(sync_conn):  # noqa: ANN001
                cfg.attributes["connection"] = sync_conn
                command.downgrade(cfg, "-1")

            await conn.run_sync(run)
    finally:
        await engine.dispose()


def _psycopg(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _fleet(client, app, operator_headers, count: int) -> list[tuple[str, str]]:
    """``count`` dedicated tenants, provisioned (database, migrations, seed) as the worker does."""
    made = []
    for n in range(count):
        r = await client.post("/v1/tenants", json={"name": f"Flotte {n} SARL", "tax_id": f"F{n:07d}B",
                                                   "tier": "dedicated"}, headers=operator_headers)
        assert r.status_code == 202, r.text
        tenant_id = r.json()["tenant"]["id"]
        assert await provisioning.run(app.state.db, app.state.settings, tenant_id) == "active"
        made.append((tenant_id, app.state.db.fleet.url_of(r.json()["tenant"]["database"])))
    return made


def _status(data_dir: Path, url: str, env: dict, code: int) -> list[dict]:
    """``stalela migrate --status --json``: exit 1 while a database is behind, its report on stdout either way."""
    r = subprocess.run([*CLI, "migrate", "--status", "--json"], capture_output=True, text=True, timeout=120,
                       env={"PATH": "/usr/bin:/bin", "STALELA_DATA_DIR": str(data_dir), "STALELA_LOG_LEVEL": "WARNING",
                            "STALELA_MASTER_KEY": MASTER_KEY, "STALELA_DATABASE_URL": url, **env})
    assert r.returncode == code, r.stdout + r.stderr
    return json.loads(r.stdout)


def _lines(out: str) -> dict[str, str]:
    """The plain progress lines by their first column (tenant, or control-plane)."""
    return {line.split("  ")[0]: line for line in out.splitlines() if " -> " in line}


async def test_migrate_twenty_dedicated_databases(fresh_database_url, tmp_path, operator_headers):
    postgres = fresh_database_url.startswith("postgres")
    count = 20 if postgres else 4
    head = ",".join(head_revisions())
    async with tier_world(fresh_database_url, tmp_path) as (app, client):
        fleet = await _fleet(client, app, operator_headers, count)
        await app.state.db.fleet.dispose()
        (behind_tenant, behind_url), (broken_tenant, broken_url) = fleet[3], fleet[7 if postgres else 2]
        await _downgrade(behind_url)
        await _downgrade(broken_url)
        cli = cli_in(tmp_path, fresh_database_url)
        env = {"STALELA_DEDICATED_DATABASE_URL_TEMPLATE": dedicated_template(fresh_database_url, tmp_path)}

        status = _status(tmp_path, fresh_database_url, env, code=1)
        assert len(status) == count + 1 and status[0]["tenants"] == []
        behind = {s["tenants"][0] for s in status[1:] if not s["at_head"]}
        assert behind == {behind_tenant, broken_tenant}

        # One database refuses connections, as a server that went away mid-run would.
        saved = tmp_path / "broken.db"
        if postgres:
            with psycopg.connect(_psycopg(fresh_database_url), autocommit=True) as conn:
                conn.execute(f'ALTER DATABASE "{make_url(broken_url).database}" ALLOW_CONNECTIONS false')
        else:
            shutil.copy(make_url(broken_url).database, saved)
            Path(make_url(broken_url).database).write_bytes(b"not a database" * 512)

        first = cli("migrate", code=1, env=env)["out"]
        lines = _lines(first)  # without a terminal: one plain line per database
        assert lines["control-plane"].endswith(f"{head} -> {head}  current")
        assert lines[behind_tenant].split("  ")[2:4] == [f"{lines[behind_tenant].split('  ')[2].split(' -> ')[0]} -> "
                                                         f"{head}", "ok"]
        assert "failed" in lines[broken_tenant] and "-> " in lines[broken_tenant]
        assert sum(line.endswith("  current") for line in lines.values()) == count - 1  # incl. the control plane
        assert "1 of" in first and "failed" in first

        if postgres:
            with psycopg.connect(_psycopg(fresh_database_url), autocommit=True) as conn:
                conn.execute(f'ALTER DATABASE "{make_url(broken_url).database}" ALLOW_CONNECTIONS true')
        else:
            shutil.copy(saved, make_url(broken_url).database)
        second = _lines(cli("migrate", env=env)["out"])
        assert second[broken_tenant].endswith(f" -> {head}  ok")
        assert second[behind_tenant].endswith("  current")
        status = _status(tmp_path, fresh_database_url, env, code=0)
        assert all(s["at_head"] for s in status) and len(status) == count + 1
        await asyncio.sleep(0)
