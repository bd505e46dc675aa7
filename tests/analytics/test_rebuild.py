"""The rebuild: the sums recomputed from the invoices (in their Z-decided business days) and the sync outcomes
equal the sums sealing and the agent kept; from empty tables (history before migration 0034) it restores them;
and the CLI command."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import delete

from stalela.analytics.rebuild import rebuild
from stalela.analytics.repository import AnalyticsRepository
from stalela.authority import service as agent
from stalela.authority.models import AuthorityTally
from stalela.fiscal.invoices.models import BuyerTally, SalesTally
from stalela.tenancy.context import bind_tenant
from tests.analytics.test_api import _three_days


async def _rows(db, tenant_id: str) -> tuple[list, list]:
    async with db.transaction(readonly=True) as session:
        await bind_tenant(session, tenant_id)
        repo = AnalyticsRepository(session)
        return tuple([[{k: v for k, v in r.items() if k != "updated_at"} for r in await repo.rows(model)]
                      for model in (SalesTally, BuyerTally, AuthorityTally)])


async def _rebuild(db, tenant_id: str, apply: bool):
    async with db.transaction() as session:
        await bind_tenant(session, tenant_id)
        return await rebuild(session, tenant_id, apply=apply)


def _sorted(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: json.dumps(r, default=str, sort_keys=True))


async def test_the_rebuild_finds_what_sealing_and_the_agent_kept(client, shop, clock, db):
    tenant, headers, (a, b) = shop
    _, invoices = await _three_days(client, headers, clock, a, b)
    # Two outcomes recorded where the agent records them.
    await agent._acknowledge(db, tenant["id"], invoices[0]["id"], "NIM1", {"codeDEFDGI": "ABC", "counters": "1/1"})
    await agent._fail(db, tenant["id"], invoices[1]["id"], "totals_mismatch", "the DGI's total differs")
    kept = await _rows(db, tenant["id"])
    assert len(kept[0]) > 10 and len(kept[1]) == 2 * 3 and {r["outcome"] for r in kept[2]} == {"acknowledged", "failed"}

    checked = await _rebuild(db, tenant["id"], apply=False)
    assert checked.drift == {"analytics_sales": 0, "analytics_buyers": 0, "analytics_authority": 0}, checked.as_json()
    assert (checked.invoices, checked.outcomes) == (len(invoices), 2)

    # The history before the sums existed: empty tables, restored by the rebuild.
    async with db.transaction() as session:
        await bind_tenant(session, tenant["id"])
        for model in (SalesTally, BuyerTally, AuthorityTally):
            await session.execute(delete(model).where(model.tenant_id == tenant["id"]))
    found = await _rebuild(db, tenant["id"], apply=False)
    assert found.drift == {"analytics_sales": len(kept[0]), "analytics_buyers": 6, "analytics_authority": 2}
    assert await _rows(db, tenant["id"]) == ([], [], [])  # a check changes nothing
    await _rebuild(db, tenant["id"], apply=True)
    restored = await _rows(db, tenant["id"])
    for got, want in zip(restored, kept):
        assert _sorted(got) == _sorted(want)


def test_the_command(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "STALELA_DATA_DIR": str(tmp_path), "STALELA_LOG_LEVEL": "WARNING",
           "STALELA_MASTER_KEY": "6d" * 32, "LANG": "C.UTF-8",
           # The code under test where it is not the installed package's (a worktree's src/).
           **({"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {})}
    stalela = str(Path(sys.executable).parent / "stalela")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([stalela, *args], env=env, capture_output=True, text=True, timeout=120)

    assert run("migrate").returncode == 0
    created = run("tenant", "create", "--name", "Rebuild SARL", "--tax-id", "R1", "--json")
    tenant_id = json.loads(created.stdout)["tenant"]["id"]
    r = run("analytics", "rebuild", "--tenant", tenant_id, "--check", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"tenant_id": tenant_id, "invoices": 0, "outcomes": 0,
                                    "drift": {"analytics_sales": 0, "analytics_buyers": 0, "analytics_authority": 0}}
    r = run("analytics", "rebuild", "--tenant", tenant_id)
    assert r.returncode == 0 and r.stdout == f"{tenant_id}: 0 invoices, 0 outcomes: no drift\n", r.stderr
