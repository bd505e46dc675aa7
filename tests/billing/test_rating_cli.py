"""``stalela billing plan|rate-card|assign``: the operator's commands, human output on stdout."""
from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from stalela.cli import billing as billing_cli
from stalela.cli import bootstrap
from stalela.cli.main import app as cli
from tests.billing.support import PRICES, plan_id


@pytest.fixture
def run(settings, monkeypatch):
    monkeypatch.setattr(billing_cli, "get_settings", lambda: settings)

    def invoke(*args: str, code: int = 0):
        result = CliRunner().invoke(cli, ["billing", *args])
        assert result.exit_code == code, (result.output, result.exception)
        return json.loads(result.stdout) if "--json" in args and code == 0 else result.output

    return invoke


def test_plans_rate_cards_and_assignment(run, settings, tmp_path):
    pid = plan_id("cli")
    out = run("plan", "create", "--id", pid, "--name", "CLI plan", "--quota", "invoices_sealed=500")
    assert f"created plan {pid}" in out and "invoices_sealed ≤ 500" in out
    listed = run("plan", "list", "--json")["data"]
    mine = next(p for p in listed if p["id"] == pid)
    assert mine["latest_rate_card"] is None and mine["quotas"] == {"invoices_sealed": "500"}
    assert next(p for p in listed if p["id"] == "default")["latest_rate_card"]["version"] >= 1

    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps(PRICES))
    out = run("rate-card", "add", "--plan", pid, "--effective-from", "2026-01-01", "--prices", str(prices))
    assert out.strip() == f"plan {pid}: rate card v1 in force from 2026-01-01"
    card = run("rate-card", "add", "--plan", pid, "--effective-from", "2026-06-01", "--prices", str(prices), "--json")
    assert card["version"] == 2 and card["prices"]["api_calls"]["unit_price"] == "0.1"
    assert "rate_card_not_after_latest" in run("rate-card", "add", "--plan", pid, "--effective-from", "2026-05-01",
                                               "--prices", str(prices), code=1)
    assert "rate card v2 from 2026-06-01" in run("plan", "list")

    created = asyncio.run(bootstrap.create_tenant(settings, "CLI Billed SARL", "CB1", "CD"))
    tenant_id = created["tenant"]["id"]
    out = run("assign", "--tenant", tenant_id, "--plan", pid)
    assert out.strip() == f"tenant {tenant_id} is on plan {pid}"
    account = run("assign", "--tenant", tenant_id, "--plan", pid, "--anomaly-threshold", "3", "--json")
    assert account["anomaly_threshold"] == "3" and account["quotas"] == {"invoices_sealed": "500"}


def test_refusals_exit_with_the_code(run, tmp_path):
    # 1: refused (not found, conflict); 2: input refused as invalid (docs/cli.md)
    assert "plan_not_found" in run("rate-card", "add", "--plan", "nope-nope", "--effective-from", "2026-01-01",
                                   "--prices", str(_file(tmp_path, PRICES)), code=1)
    assert "unknown_resource" in run("plan", "create", "--id", plan_id(), "--name", "x", "--quota", "warp=1", code=2)
    bad = _file(tmp_path, {"api_calls": {"unit_price": 0.1}})
    assert "unit_price" in run("rate-card", "add", "--plan", "default", "--effective-from", "2040-01-01",
                               "--prices", str(bad), code=2)
    (tmp_path / "junk.json").write_text("{not json")
    assert "not JSON" in run("rate-card", "add", "--plan", "default", "--effective-from", "2040-01-01",
                             "--prices", str(tmp_path / "junk.json"), code=2)
    assert "tenant_not_found" in run("assign", "--tenant", "ten_nobody", "--plan", "default", code=1)


def _file(tmp_path, data):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    return path
