"""``stalela simulate <platform>`` as a separate process: what it prints, that it serves, that it stops."""
from __future__ import annotations

import sys

import httpx
import pytest

from stalela.connectors.simulator import main
from tests.authority.simulator.test_arca_main import start, stop

pytestmark = pytest.mark.e2e

CLI = [sys.executable, "-m", "stalela.cli.main", "simulate"]


def test_simulate_shopify_prints_its_credentials_serves_and_stops():
    proc, printed = start(CLI + ["shopify", "--port", "0", "--secret", "s3cret", "--time-scale", "3600",
                                 "--faults", "duplicate=0.5", "--seed", "4"])
    lines = dict(line.partition(" ")[::2] for line in printed)
    try:
        url = lines["listening"]
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        assert lines["secret"] == "s3cret" and lines["access_token"].startswith("shpat_")
        status = httpx.get(f"{url}/_sim/status").json()
        assert status["platform"] == "shopify"
        assert httpx.get(f"{url}/_sim/faults").json()["duplicate"] == 0.5
        r = httpx.get(f"{url}/admin/api/2025-01/orders.json",
                      headers={"X-Shopify-Access-Token": lines["access_token"]})
        assert (r.status_code, r.json()) == (200, {"orders": []})
    finally:
        assert stop(proc) == 0


@pytest.mark.parametrize("args", [["--faults", "bogus=1"], ["--faults", "drop=3"], ["--time-scale", "0"],
                                  ["--port", "x"]])
def test_bad_arguments_exit_2(args, capsys):
    assert main("woocommerce", args) == 2
    assert capsys.readouterr().err


def test_unknown_platform_exits_2(capsys):
    assert main("amazon", []) == 2
