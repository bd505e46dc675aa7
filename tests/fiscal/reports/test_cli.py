"""`stalela report z|x|a|rebuild` in a subprocess, against the database the API wrote."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import openpyxl

from tests.fiscal.reports.conftest import seal


async def run(settings, database_url, *args):
    env = {"PATH": "/usr/bin:/bin", "STALELA_MASTER_KEY": "6d" * 32, "STALELA_DATA_DIR": str(settings.data_dir), "STALELA_DATABASE_URL": database_url}
    # In a thread: the in-process app's background work (outbox handlers) must be able to finish its
    # transaction while the command runs, or on SQLite the command waits on its write lock and gives up.
    return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "stalela.cli.main", "report", *args],
                                   env=env, capture_output=True, timeout=120)


async def test_report_commands(client, shop, settings, database_url, tmp_path):
    tenant, headers, outlet = shop  # the shop's clock says 2026-11-20, noon in Kinshasa
    for _ in range(2):
        await seal(client, headers, outlet["id"])
    t, o = ["--tenant", tenant["id"]], ["--outlet", outlet["id"]]

    r = await run(settings, database_url, "x", *t, *o, "--day", "2026-11-20")
    assert r.returncode == 0, r.stderr.decode()
    x = json.loads(r.stdout)
    assert x["object"] == "x_report" and x["counts"]["invoices"] == 2

    r = await run(settings, database_url, "z", *t, *o, "--day", "2026-11-20", "--format", "pdf",
            "-o", str(tmp_path / "z.pdf"))
    assert r.returncode == 0 and b"day closed" in r.stderr, r.stderr.decode()
    assert (tmp_path / "z.pdf").read_bytes().startswith(b"%PDF")
    r = await run(settings, database_url, "z", *t, *o, "--day", "2026-11-20")
    assert r.returncode == 0 and b"already closed" in r.stderr
    z = json.loads(r.stdout)
    assert z["closed_by"] == "cli" and z["totals"] == x["totals"]
    assert (await client.get(f"/v1/z-reports/{z['id']}", headers=headers)).json() == z

    r = await run(settings, database_url, "z", *t, "--id", z["id"], "--format", "csv")
    assert r.returncode == 0 and f"totals.total,{z['totals']['total']}".encode() in r.stdout

    out = tmp_path / "a.xlsx"
    r = await run(settings, database_url, "a", *t, "--from", "2026-11-20", "--to", "2026-11-20", "--format", "xlsx",
            "-o", str(out))
    assert r.returncode == 0 and b"2 invoices" in r.stdout, r.stderr.decode()  # the result: stdout
    assert len(list(openpyxl.load_workbook(out)["Invoices"].iter_rows(min_row=2))) == 2

    r = await run(settings, database_url, "rebuild", *t, "--check", "--json")
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    assert json.loads(r.stdout)["outlets"][0]["invoices"] == 2

    r = await run(settings, database_url, "z", *t, *o, "--day", "2099-01-01")
    assert r.returncode == 2 and b"business_day_in_future" in r.stderr
