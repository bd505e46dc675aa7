"""The CLI for Argentina: an AR tenant with its IVA condition, a point of sale, and `stalela verify` of an
AR tenant's ledger (numbers per receipt type, one series aligned with ARCA's last number)."""
from __future__ import annotations

import json
import subprocess
import sys

from stalela.fiscal.invoices.repository import SeriesRepository
from stalela.tenancy.context import bind_tenant
from tests.cli.test_cli import run
from tests.support.ar import a_day_of_receipts, ar_outlet, ar_tenant

CLI = [sys.executable, "-m", "stalela.cli.main"]


def test_ar_tenant_and_point_of_sale_commands(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "STALELA_DATA_DIR": str(tmp_path), "STALELA_LOG_LEVEL": "WARNING",
           "STALELA_MASTER_KEY": "6d" * 32}
    run(["migrate"], env)
    created = run(["tenant", "create", "--name", "Kiosco SRL", "--tax-id", "30-71234567-1", "--jurisdiction", "AR",
                   "--vat-condition", "responsable_inscripto", "--json"], env)
    tenant = created["tenant"]
    assert tenant["jurisdiction"] == "AR" and tenant["tax_id"] == "30712345671"
    assert tenant["ar"]["vat_condition"] == "responsable_inscripto"
    assert tenant["locale"] is None and tenant["language"] == "es"  # Argentina's, until one is chosen
    outlet = run(["outlet", "create", "--tenant", tenant["id"], "--code", "PV3", "--name", "Caja", "--pos-number", "3",
                  "--json"], env)
    assert outlet["pos_number"] == 3 and outlet["timezone"] == "America/Argentina/Buenos_Aires"

    def refused(*args, exit_code=2):  # 2: input refused as invalid (docs/cli.md)
        r = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True)
        assert r.returncode == exit_code, r.stdout + r.stderr
        return r.stderr

    assert "pos_number_required" in refused("outlet", "create", "--tenant", tenant["id"], "--code", "PV4",
                                            "--name", "Caja 2")
    assert "pos_number_taken" in refused("outlet", "create", "--tenant", tenant["id"], "--code", "PV5",
                                         "--name", "Caja 3", "--pos-number", "3", exit_code=1)  # a conflict
    assert "vat_condition" in refused("tenant", "create", "--name", "X", "--tax-id", "30712345671",
                                      "--jurisdiction", "AR")
    assert "tax_id" in refused("tenant", "create", "--name", "X", "--tax-id", "30712345672", "--jurisdiction", "AR",
                               "--vat-condition", "monotributo")
    assert "vat_condition" in refused("tenant", "create", "--name", "X", "--tax-id", "30712345671",
                                      "--jurisdiction", "AR", "--vat-condition", "rich")
    assert "locale" in refused("tenant", "create", "--name", "X", "--tax-id", "A7654321Z", "--locale", "de")
    english = run(["tenant", "create", "--name", "Kin Export", "--tax-id", "A7654321Z", "--locale", "en", "--json"], env)
    assert english["tenant"]["locale"] == "en" and english["tenant"]["language"] == "en"
    # A DRC outlet still gets Kinshasa's timezone, and no point of sale.
    drc = run(["tenant", "create", "--name", "CLI SARL", "--tax-id", "C42", "--json"], env)["tenant"]
    kin = run(["outlet", "create", "--tenant", drc["id"], "--code", "T1", "--name", "Till", "--json"], env)
    assert kin["timezone"] == "Africa/Kinshasa" and kin["pos_number"] is None
    assert "field_not_applicable" in refused("outlet", "create", "--tenant", drc["id"], "--code", "T2", "--name", "T",
                                             "--pos-number", "2")


async def test_verify_an_ar_tenant_with_an_aligned_series(app, client, settings, database_url, tmp_path):
    tenant, headers = await ar_tenant(client)
    outlet = await ar_outlet(client, headers)
    async with app.state.db.transaction() as session:  # as saving ARCA credentials does: ARCA's last A is 41
        await bind_tenant(session, tenant["id"])
        assert await SeriesRepository(session).align(tenant["id"], outlet["id"], "1", 41) is not None
    sealed = await a_day_of_receipts(client, headers, outlet["id"])
    a = next(s for s in sealed if s["type"] == "1")
    assert a["counter"] == 42 and a["seal"]["payload"]["series_first"] == 42
    assert [s["counter"] for s in sealed if s["type"] == "6"] == [1, 2]

    env = {"PATH": "/usr/bin:/bin", "STALELA_MASTER_KEY": "6d" * 32, "STALELA_DATA_DIR": str(settings.data_dir),
           "STALELA_DATABASE_URL": database_url}
    out = tmp_path / "ar.tar.gz"
    r = subprocess.run([*CLI, "export", "audit", "--tenant", tenant["id"], "-o", str(out)], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([*CLI, "verify", str(out), "--json"], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["valid"] is True, report
    assert report["invoices"] == len(sealed) and report["series"] == 4  # types 6, 1, 8 and 2
    r = subprocess.run([*CLI, "verify", "--database-url", database_url, "--tenant", tenant["id"]], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0 and "VALID" in r.stdout, r.stderr  # the verdict is the result: stdout
