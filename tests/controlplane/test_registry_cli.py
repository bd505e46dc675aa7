"""`stalela tenant create --tier dedicated --wait` and `stalela tenant list`, as an operator runs them."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

from stalela.controlplane import placement
from tests.conftest import MASTER_KEY
from tests.controlplane.conftest import dedicated_template


def _stalela(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stalela.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=300)


def test_create_dedicated_and_wait_then_list(database_url, tmp_path):
    template = dedicated_template(database_url, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STALELA_")} | {
        "STALELA_DATABASE_URL": database_url, "STALELA_MASTER_KEY": MASTER_KEY, "STALELA_DATA_DIR": str(tmp_path),
        "STALELA_LOG_LEVEL": "WARNING", "STALELA_DEDICATED_DATABASE_URL_TEMPLATE": template}
    done = _stalela(env, "tenant", "create", "--name", "Ligne SARL", "--tax-id", "C0000001", "--tier", "dedicated",
                    "--wait")
    assert done.returncode == 0, done.stderr
    # The secret alone on stdout (KEY=$(stalela tenant create …)); what it belongs to on stderr.
    api_key = done.stdout.strip()
    assert api_key.startswith("sk_") and "\n" not in api_key
    tenant_id = done.stderr.split("tenant ", 1)[1].split()[0]
    assert tenant_id.startswith("ten_")
    assert "status active" in done.stderr and "server " in done.stderr
    try:
        listed = _stalela(env, "tenant", "list", "--tier", "dedicated", "--json")
        assert listed.returncode == 0, listed.stderr
        mine = [t for t in json.loads(listed.stdout) if t["id"] == tenant_id]
        assert mine and mine[0]["status"] == "active" and mine[0]["provisioning"]["status"] == "completed"
        assert {t["tier"] for t in json.loads(listed.stdout)} == {"dedicated"}
        table = _stalela(env, "tenant", "list", "--status", "active")
        row = next(line for line in table.stdout.splitlines() if line.startswith(tenant_id))
        assert "dedicated" in row and "active/completed" in row and mine[0]["server"] in row

        refused = _stalela(env, "tenant", "create", "--name", "Nulle Part", "--tax-id", "C2", "--tier", "dedicated",
                           "--target", "nowhere:1")
        assert refused.returncode == 2 and "unknown_server" in refused.stderr and not refused.stdout
        shared = _stalela(env, "tenant", "create", "--name", "Commune", "--tax-id", "C3", "--json")
        assert shared.returncode == 0 and json.loads(shared.stdout)["tenant"]["tier"] == "shared"
    finally:
        if not database_url.startswith("sqlite"):
            asyncio.run(placement.drop_database(template.replace("{tenant}", placement.database_name(tenant_id))))
