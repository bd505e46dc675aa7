"""Reports, exports and ``stalela verify`` for a dedicated tenant: the work runs against its own database
(the dedicated database's worker pass, the Z scheduler's round there) and the CLI finds that database through
the control plane, as every request does."""
from __future__ import annotations

import subprocess
from datetime import timedelta

from stalela.controlplane.dataplane import DatabaseWorker
from stalela.db.base import utcnow
from stalela.fiscal.reports.tasks import close_due_days
from tests.conftest import MASTER_KEY
from tests.controlplane.conftest import dedicated_template, provisioned, seal
from tests.support.cli import CLI


async def test_z_report_export_and_verify_of_a_dedicated_tenant(tier_client, tier_app, tier_settings, operator_headers,
                                                                database_url, tmp_path):
    tenant, headers = await provisioned(tier_client, tier_app, operator_headers)
    for _ in range(3):
        await seal(tier_client, tenant, headers)
    database = (await tier_client.get(f"/v1/tenants/{tenant['id']}", headers=operator_headers)).json()["database"]
    control = tier_app.state.db

    # The audit export: requested over the API, built by the dedicated database's worker.
    r = await tier_client.post("/v1/exports/audit", json={}, headers=headers)
    assert r.status_code == 202, r.text
    worker = DatabaseWorker(control, tier_settings, database)
    worked, _more = await worker.run_once()
    assert worked
    job = (await tier_client.get(f"/v1/exports/{r.json()['id']}", headers=headers)).json()
    assert job["status"] == "ready", job
    download = await tier_client.get(job["download_url"], headers=headers)
    assert download.status_code == 200 and download.content[:2] == b"\x1f\x8b"  # gzip

    # The Z scheduler's round on the tenant's database closes its day.
    created = await close_due_days(control.fleet.database(database), tier_settings, utcnow() + timedelta(days=2))
    assert created == 1
    z = (await tier_client.get("/v1/z-reports", params={"outlet_id": tenant["outlet"]}, headers=headers)).json()["data"]
    assert [(x["counts"]["invoices"], x["closed_by"]) for x in z] == [(3, "scheduler")]
    # The control plane's own round finds nothing of this tenant (its days are in its own database).
    assert await close_due_days(control, tier_settings, utcnow() + timedelta(days=2)) >= 0

    env = {"PATH": "/usr/bin:/bin", "STALELA_DATA_DIR": str(tmp_path), "STALELA_LOG_LEVEL": "WARNING",
           "STALELA_MASTER_KEY": MASTER_KEY, "STALELA_DATABASE_URL": database_url,
           "STALELA_DEDICATED_DATABASE_URL_TEMPLATE": dedicated_template(database_url, tmp_path)}
    for args in (["verify", "--tenant", tenant["id"]], ["verify", "--tenant", tenant["id"], "--audit-log"]):
        r = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "VALID" in r.stdout  # the verdict is the command's result (docs/cli.md)
    assert "3 invoices" in subprocess.run([*CLI, "verify", "--tenant", tenant["id"]], env=env, capture_output=True,
                                          text=True, timeout=120).stdout
