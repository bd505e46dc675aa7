"""kill -9 of the worker right after each provisioning step commits (issue 17, item 7).

A real `stalela serve` (API only) and real `stalela worker` processes, on SQLite and PostgreSQL. Each worker
dies (``os._exit``: no cleanup, its outbox claim left behind) right after one step commits: database,
migrated, seeded in turn; the next worker takes the event over when the dead one's lease expires and
continues from the step recorded. A last worker without the hook finishes the job. The tenant ends active
with exactly one signing key, one audit entry of its provisioning and one database, and it seals.
"""
from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from stalela.controlplane import placement
from stalela.db.session import Database
from tests.conftest import OPERATOR_TOKEN
from tests.controlplane.conftest import dedicated_template
from tests.support.invoices import sample_invoice
from tests.support.server import start_server
from tests.support.workers import kill_workers, spawn_worker, worker_env

pytestmark = pytest.mark.e2e
OP = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
STEPS = ["database", "migrated", "seeded"]


async def _scalar(url: str, sql: str, **params) -> int:
    db = Database(url)
    try:
        async with db.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SELECT set_config('stalela.platform', 'on', false)"))
            return (await conn.execute(text(sql), params)).scalar()
    finally:
        await db.dispose()


def _databases(control_url: str, tenant_id: str, data_dir: Path) -> int:
    """How many databases the tenant has (its name is unique to it)."""
    name = placement.database_name(tenant_id)
    if control_url.startswith("sqlite"):
        return len(list((data_dir / "tenants").glob(f"{name}*.db")))
    admin = make_url(control_url).set(database="postgres").render_as_string(hide_password=False)
    return asyncio.run(_scalar(admin, "SELECT count(*) FROM pg_database WHERE datname LIKE :n", n=f"{name}%"))


def test_provisioning_killed_after_every_step_ends_once(fresh_database_url, tmp_path):
    data_dir = tmp_path / "var"
    template = dedicated_template(fresh_database_url, data_dir)
    common = {"STALELA_DATABASE_URL": fresh_database_url, "STALELA_DEDICATED_DATABASE_URL_TEMPLATE": template}
    server = start_server(common | {"STALELA_OPERATOR_TOKEN": OPERATOR_TOKEN, "STALELA_INPROCESS_WORKERS": "false",
                                    "STALELA_BACKGROUND_WORKERS": "0"}, data_dir)
    env = worker_env(data_dir) | common
    log = tmp_path / "worker.log"
    workers: list[subprocess.Popen] = []
    c = httpx.Client(base_url=server.base_url, timeout=30)
    tenant_id = None
    try:
        r = c.post("/v1/tenants", json={"name": "Tenace SARL", "tax_id": "T0000009", "jurisdiction": "CD",
                                        "tier": "dedicated"}, headers=OP)
        assert r.status_code == 202, r.text
        tenant_id = r.json()["tenant"]["id"]
        key = {"Authorization": f"Bearer {r.json()['api_key']}"}

        for step in STEPS:
            worker = spawn_worker(env, log, STALELA_PROVISIONING_EXIT_AFTER_STEP=step)
            workers.append(worker)
            # The hook fires only right after this step's commit: the death proves the step committed.
            assert worker.wait(120) == 137, f"{step}: worker did not die after the step\n{log.read_text()[-3000:]}"
            job = c.get(f"/v1/tenants/{tenant_id}", headers=OP).json()["provisioning"]
            assert (job["step"], job["status"], job["error"]) == (step, "running", None), job
            assert c.get("/v1/outlets", headers=key).json()["code"] == "tenant_provisioning"

        workers.append(spawn_worker(env, log))
        deadline = time.monotonic() + 60
        while (tenant := c.get(f"/v1/tenants/{tenant_id}", headers=OP).json())["status"] != "active":
            assert workers[-1].poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"never resumed: {tenant}"
            time.sleep(0.25)
        assert tenant["provisioning"] == {"step": "active", "status": "completed", "attempts": 4, "error": None}

        signing = asyncio.run(_scalar(fresh_database_url, "SELECT count(*) FROM signing_keys WHERE tenant_id = :t",
                                      t=tenant_id))
        own_url = template.replace("{tenant}", placement.database_name(tenant_id))
        audit = asyncio.run(_scalar(own_url, "SELECT count(*) FROM audit_log WHERE tenant_id = :t "
                                             "AND action = 'tenant.provisioned'", t=tenant_id))
        assert (signing, audit, _databases(fresh_database_url, tenant_id, data_dir)) == (1, 1, 1)

        outlet = c.post("/v1/outlets", json={"code": "S1", "name": "Shop"}, headers=key)
        assert outlet.status_code == 201, outlet.text
        sealed = c.post("/v1/invoices", json=sample_invoice(outlet.json()["id"]), headers=key)
        assert sealed.status_code == 201, sealed.text
        assert asyncio.run(_scalar(own_url, "SELECT count(*) FROM invoices WHERE tenant_id = :t", t=tenant_id)) == 1
    finally:
        kill_workers(workers)
        c.close()
        server.stop()
        if tenant_id and not fresh_database_url.startswith("sqlite"):
            asyncio.run(placement.drop_database(template.replace("{tenant}", placement.database_name(tenant_id))))
