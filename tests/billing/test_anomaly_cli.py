"""``stalela billing anomalies detect`` and the billing cycle's daily detection."""
from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import pytest
from typer.testing import CliRunner

from stalela.billing import cycle
from stalela.cli import billing_anomalies
from stalela.cli.main import app as cli
from stalela.db.session import Database
from tests.billing.anomaly_support import DAY, new_tenant_id, spike_series, stored, write_usage


@pytest.fixture
def run(settings, monkeypatch):
    monkeypatch.setattr(billing_anomalies, "get_settings", lambda: settings)

    def invoke(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(cli, ["billing", "anomalies", *args])
        assert result.exit_code == code, (result.output, result.exception)
        return result.output  # the anomalies (stdout), then the count (stderr)

    return invoke


def test_detect_by_hand_is_idempotent(run, settings):
    tenant = new_tenant_id()

    async def usage():
        db = Database.from_settings(settings)
        try:
            await write_usage(db, tenant, "api_calls", spike_series())
        finally:
            await db.dispose()

    async def count():
        db = Database.from_settings(settings)
        try:
            return len((await stored(db, tenant))[0])
        finally:
            await db.dispose()

    asyncio.run(usage())
    out = run("detect", "--day", DAY.isoformat(), "--tenant", tenant)
    assert f"{tenant}  api_calls" in out and "observed 1000" in out and "1 new anomaly" in out
    again = json.loads(run("detect", "--day", DAY.isoformat(), "--tenant", tenant, "--json"))
    assert again == {"day": DAY.isoformat(), "data": []}
    assert asyncio.run(count()) == 1
    assert "--day" in run("detect", "--day", "30/11/2026", code=2)


async def test_the_billing_cycle_detects_yesterday(db, settings):
    tenant = new_tenant_id()
    await write_usage(db, tenant, "network_bytes", spike_series(level=10**8, spike=10**10))
    now = datetime.combine(DAY + timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc) + timedelta(hours=1)
    await cycle.run_once(db, settings, now=now)
    await cycle.run_once(db, settings, now=now + timedelta(hours=1))
    anomalies, events = await stored(db, tenant)
    assert [(a.resource, a.day) for a in anomalies] == [("network_bytes", DAY)] and len(events) == 1
