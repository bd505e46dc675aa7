"""The CLI drives the same services as the API, with --json output for scripts."""
from __future__ import annotations

import json
import subprocess
import sys

import httpx

from tests.support.invoices import sample_invoice
from tests.support.server import start_server
from tests.support.verify import verify_independently


def run(args, env):
    r = subprocess.run([sys.executable, "-m", "stalela.cli.main", *args], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout) if "--json" in args else r.stdout


def test_registry_commands_end_to_end(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "STALELA_DATA_DIR": str(tmp_path), "STALELA_LOG_LEVEL": "WARNING",
           "STALELA_MASTER_KEY": "6d" * 32}
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
    assert bad.returncode == 1 and "api_key_not_found" in bad.stderr  # a refusal (docs/cli.md)


def test_key_rotation_keeps_old_seals_verifiable(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "STALELA_DATA_DIR": str(tmp_path), "STALELA_LOG_LEVEL": "WARNING",
           "STALELA_MASTER_KEY": "6d" * 32}
    run(["migrate"], env)
    created = run(["tenant", "create", "--name", "Rot SARL", "--tax-id", "R1", "--json"], env)
    tenant_id, key = created["tenant"]["id"], {"Authorization": f"Bearer {created['api_key']}"}
    outlet = run(["outlet", "create", "--tenant", tenant_id, "--code", "R1", "--name", "R", "--json"], env)
    server = start_server({"STALELA_DATA_DIR": str(tmp_path)}, tmp_path)
    try:
        def seal():
            r = httpx.post(f"{server.base_url}/v1/invoices", json=sample_invoice(outlet["id"]), headers=key)
            assert r.status_code == 201, r.text
            return r.json()

        before = seal()
        rotated = run(["keys", "rotate", "--tenant", tenant_id, "--json"], env)
        after = seal()
        assert after["seal"]["key_id"] == rotated["kid"] != before["seal"]["key_id"]
        old = httpx.get(f"{server.base_url}/v1/keys/{before['seal']['key_id']}").json()
        assert old["status"] == "retired" and old["not_after"]
        verify_independently(before, old)
        verify_independently(after, httpx.get(f"{server.base_url}/v1/keys/{rotated['kid']}").json())
        assert after["seal"]["payload"]["prev_hash"] == before["seal"]["hash"]  # the chain survives rotation
        listed = run(["keys", "list", "--tenant", tenant_id, "--json"], env)["keys"]
        assert {k["status"] for k in listed} == {"active", "retired"}
    finally:
        server.stop()
