"""kill -9 of the worker right after each offboarding step commits (issue 16, item 7).

A real `stalela serve` (API only) and real `stalela worker` processes on SQLite and PostgreSQL. Each
worker is told to die (``os._exit``, no cleanup, no outbox bookkeeping: what kill -9 leaves) right
after one step commits: deprovisioning, exported, purged, deleted, in turn; the next worker starts on
what the dead one left (its claim on the event expires first). A last worker runs with no hook and
redelivers the event the last dead worker never marked done. The end state is the one a run without
kills reaches, with exactly one receipt and one deletion audit entry.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from stalela.audit.models import AuditEntry
from stalela.config import Settings
from stalela.db.session import Database
from stalela.outbox.models import OutboxEvent
from stalela.privacy.offboarding_service import TOPIC
from stalela.tenancy.context import bind_platform
from tests.conftest import MASTER_KEY, OPERATOR_TOKEN
from tests.support.invoices import sample_invoice
from tests.support.server import start_server

pytestmark = pytest.mark.e2e
OP = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
STEPS = ["deprovisioning", "exported", "purged", "deleted"]


def _worker(env: dict[str, str], log: Path, exit_after: str | None) -> subprocess.Popen:
    extra = {"STALELA_OFFBOARDING_EXIT_AFTER_STEP": exit_after} if exit_after else {}
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "stalela.cli.main", "worker", "--concurrency", "2"],
                                env=env | extra, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


async def _facts(url: str, tenant_id: str) -> tuple[int, int]:
    """(audit entries tenant.deleted, pending offboarding events) straight from the database."""
    db = Database.from_settings(Settings(database_url=url, master_key=MASTER_KEY))
    try:
        async with db.transaction(readonly=True) as session:
            await bind_platform(session)
            deleted = (await session.execute(select(func.count()).select_from(AuditEntry).where(
                AuditEntry.tenant_id == tenant_id, AuditEntry.action == "tenant.deleted"))).scalar_one()
            pending = (await session.execute(select(func.count()).select_from(OutboxEvent).where(
                OutboxEvent.tenant_id == tenant_id, OutboxEvent.topic == TOPIC,
                OutboxEvent.status == "pending"))).scalar_one()
        return deleted, pending
    finally:
        await db.dispose()


def test_offboarding_killed_after_every_step_ends_once(fresh_database_url, tmp_path):
    data_dir = tmp_path / "var"
    server = start_server({"STALELA_DATABASE_URL": fresh_database_url, "STALELA_OPERATOR_TOKEN": OPERATOR_TOKEN,
                           "STALELA_INPROCESS_WORKERS": "false", "STALELA_BACKGROUND_WORKERS": "0"}, data_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STALELA_")} | {
        "STALELA_DATABASE_URL": fresh_database_url, "STALELA_MASTER_KEY": MASTER_KEY,
        "STALELA_DATA_DIR": str(data_dir), "STALELA_LOG_LEVEL": "WARNING",
        "STALELA_OUTBOX_LEASE_SECONDS": "2", "STALELA_OUTBOX_POLL_SECONDS": "0.1",
        "STALELA_OUTBOX_BACKOFF_BASE_SECONDS": "0.05", "STALELA_OUTBOX_BACKOFF_CAP_SECONDS": "0.5",
        "STALELA_CHECKPOINT_INTERVAL_SECONDS": "0", "STALELA_Z_SCHEDULER_INTERVAL_SECONDS": "0"}
    log = tmp_path / "worker.log"
    workers: list[subprocess.Popen] = []
    c = httpx.Client(base_url=server.base_url, timeout=30)
    try:
        r = c.post("/v1/tenants", json={"name": "Leaving SARL", "tax_id": "L0000009", "jurisdiction": "CD"}, headers=OP)
        assert r.status_code == 201, r.text
        tenant_id, key = r.json()["tenant"]["id"], {"Authorization": f"Bearer {r.json()['api_key']}"}
        outlet = c.post("/v1/outlets", json={"code": "S1", "name": "Shop"}, headers=key).json()
        for n in range(3):
            body = sample_invoice(outlet["id"], buyer={"type": "PM", "name": f"Client {n} SA", "tax_id": f"B{n}"})
            assert c.post("/v1/invoices", json=body, headers=key).status_code == 201
        r = c.post(f"/v1/tenants/{tenant_id}/offboard", json={"mode": "delete"}, headers=OP)
        assert r.status_code == 202, r.text

        for step in STEPS:
            worker = _worker(env, log, step)
            workers.append(worker)
            # The hook fires only right after this step's commit: the death proves the step committed.
            assert worker.wait(90) == 137, f"{step}: worker did not die after the step\n{log.read_text()[-3000:]}"
            state = c.get(f"/v1/tenants/{tenant_id}/offboarding", headers=OP).json()
            assert state["state"] == step, (step, state)
        receipt = state["receipt"]
        assert receipt and state["steps"]["deleted_at"]

        # A clean worker: it takes over the event the last dead worker held, which finds nothing to do.
        workers.append(_worker(env, log, None))
        deadline = time.monotonic() + 60
        while asyncio.run(_facts(fresh_database_url, tenant_id))[1]:
            assert workers[-1].poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the stale offboarding event was never redelivered"
            time.sleep(0.25)
        final = c.get(f"/v1/tenants/{tenant_id}/offboarding", headers=OP).json()
        assert final == state  # the same end state, the same (single) receipt
        assert asyncio.run(_facts(fresh_database_url, tenant_id))[0] == 1
        assert final["mode"] == "delete" and final["download_url"] is None and final["export_sha256"]
        assert json.dumps(receipt["payload"]["purged"]) and receipt["payload"]["merkle_tree_size"] == 3
        assert c.get(f"/v1/tenants/{tenant_id}", headers=OP).json()["status"] == "deleted"
        assert c.get("/v1/invoices", headers=key).status_code == 401
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, 9)
                worker.wait(10)
        c.close()
        server.stop()
