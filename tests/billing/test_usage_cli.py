"""``stalela usage aggregate``: the aggregation by hand, incremental or over a range, idempotent."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from stalela.billing import usage_service
from stalela.db.session import Database
from stalela.tenancy.context import bind_tenant
from tests.conftest import make_settings
from tests.support.cli import cli_in


def test_the_cli_aggregates_incrementally_and_by_range(tmp_path):
    cli = cli_in(tmp_path)
    cli("migrate")
    tenant_id = cli("tenant", "create", "--name", "Usage CLI", "--tax-id", "UC1", "--json")["tenant"]["id"]
    settings = make_settings(f"sqlite:///{tmp_path / 'stalela.db'}", tmp_path)
    yesterday = datetime.now(timezone.utc) - timedelta(days=1)

    async def seed():
        db = Database.from_settings(settings)
        try:
            async with db.transaction() as session:
                await bind_tenant(session, tenant_id)
                await usage_service.record(session, settings, tenant_id, [
                    {"event_id": "a", "resource": "api_calls", "quantity": "3", "occurred_at": yesterday.isoformat()}])
        finally:
            await db.dispose()

    asyncio.run(seed())
    assert cli("usage", "aggregate", "--json") == {"tenants": {tenant_id: 1}, "rows": 1}
    # Events received within the late-commit margin are looked at again: the same row, rewritten identically.
    assert cli("usage", "aggregate", "--json")["rows"] == 1
    day = yesterday.date().isoformat()
    assert cli("usage", "aggregate", "--tenant", tenant_id, "--day", day, "--json")["rows"] == 1
    assert "1 tenant(s): 1 daily row(s) written" in cli("usage", "aggregate", "--from", day, "--to", day)["out"]
