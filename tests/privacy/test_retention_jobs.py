"""The daily run: exactly one process claims each run (both databases), and ``stalela retention run
[--dry-run]`` from the command line."""
from __future__ import annotations

import asyncio
from datetime import timedelta

from stalela.config import Settings
from stalela.db.session import Database
from stalela.privacy import retention_service as service
from stalela.privacy import retention_tasks
from tests.conftest import make_settings
from tests.privacy.support import DAY, now, rows, seed
from tests.support.cli import cli_in


async def _tenant(db: Database, settings: Settings) -> str:
    from stalela.accounts.service import create_tenant
    from stalela.accounts.schemas import TenantCreate
    from stalela.tenancy.context import bind_platform

    async with db.transaction() as session:
        await bind_platform(session)
        tenant, _key = await create_tenant(session, settings, TenantCreate(name="Daily SARL", tax_id="D1"))
    return tenant.id


async def test_the_daily_run_is_claimed_by_one_process_once_a_day(fresh_database_url, tmp_path):
    settings = make_settings(fresh_database_url, tmp_path)
    first, second = Database.from_settings(settings), Database.from_settings(settings)  # two worker processes
    try:
        tenant_id = await _tenant(first, settings)
        at = now()
        seeded = await seed(first, tenant_id, at)
        with service.use_clock(lambda: at):
            results = await asyncio.gather(retention_tasks.run_if_due(first, settings),
                                           retention_tasks.run_if_due(second, settings))
        assert sorted(r is None for r in results) == [False, True]
        done = next(r for r in results if r is not None)
        assert done["totals"]["marked"] == sum(len(k) for k in seeded.due.values())
        with service.use_clock(lambda: at + timedelta(hours=23)):
            assert await retention_tasks.run_if_due(second, settings) is None  # not due yet
        with service.use_clock(lambda: at + 8 * DAY):
            later = await retention_tasks.run_if_due(second, settings)
        assert later["totals"]["purged"] == done["totals"]["marked"]
        assert (await rows(first, tenant_id))["marks"] == 0
    finally:
        await first.dispose()
        await second.dispose()


def test_the_cli_runs_and_previews(tmp_path):
    cli = cli_in(tmp_path)

    cli("migrate")
    tenant_id = cli("tenant", "create", "--name", "CLI SARL", "--tax-id", "C42", "--json")["tenant"]["id"]
    settings = make_settings(f"sqlite:///{tmp_path / 'stalela.db'}", tmp_path)

    async def seeded():
        db = Database.from_settings(settings)
        try:
            # Old enough that a run now has marks to make (the CLI's clock is the real one).
            return await seed(db, tenant_id, now() - timedelta(minutes=5))
        finally:
            await db.dispose()

    due = sum(len(k) for k in asyncio.run(seeded()).due.values())
    dry = cli("retention", "run", "--dry-run", "--json")
    assert dry["dry_run"] is True and dry["totals"] == {"marked": due, "purged": 0, "unmarked": 0}
    marks = {e["purger"]: e["mark"]["count"] for e in dry["tenants"][tenant_id]["purgers"]}
    assert marks["expired_invitations"] == 1
    assert cli("retention", "run", "--tenant", tenant_id, "--json")["totals"] == dry["totals"]
    assert cli("retention", "run", "--json")["totals"] == {"marked": 0, "purged": 0, "unmarked": 0}
    assert "1 tenant(s): would mark 0, purge 0, unmark 0" in cli("retention", "run", "--dry-run")["out"]
