"""The CLI drives the same services as the API, with --json output for scripts."""
from __future__ import annotations

import json
import subprocess
import sys


def run(args, env):
    r = subprocess.run([sys.executable, "-m", "stalela.cli.main", *args], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout) if "--json" in args else r.stdout


def test_registry_commands_end_to_end(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "STALELA_DATA_DIR": str(tmp_path), "STALELA_LOG_LEVEL": "WARNING"}
    run(["migrate"], env)
    created = run(["tenant", "create", "--name", "CLI SARL", "--tax-id", "C42", "--json"], env)
    tenant_id = created["tenant"]["id"]
    assert created["api_key"].startswith("sk_")
    outlet = run(["outlet", "create", "--tenant", tenant_id, "--code", "T1", "--name", "Till", "--json"], env)
    assert outlet["tenant_id"] == tenant_id
    key = run(["apikey", "create", "--tenant", tenant_id, "--name", "till", "--outlet", outlet["id"], "--json"], env)
    assert key["outlet_id"] == outlet["id"] and key["api_key"].startswith("sk_")
    revoked = run(["apikey", "revoke", "--tenant", tenant_id, key["id"], "--json"], env)
    assert revoked["revoked_at"]

    bad = subprocess.run([sys.executable, "-m", "stalela.cli.main", "apikey", "revoke", "--tenant", "ten_x", "key_x"],
                         env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "api_key_not_found" in bad.stderr
