"""The offline sealer against a real server (SQLite and PostgreSQL): register, take a credential, seal
10,000 invoices with no network, upload them in batches of 1,000: all merged, none refused; then
``stalela verify`` on the live database and on an audit export holding them.

Needs ``POST /v1/offline/batches`` (branch h-merge), ``POST /v1/offline/blocks/{id}/return`` and the
verifier's offline support (branch h-ledger): written to the contract (docs/offline.md), these pass once
those parts are merged.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import MASTER_KEY, OPERATOR_TOKEN
from tests.sdk.offline_support import ROOT, request
from tests.support.server import start_server

from stalela.fiscal.core.seal import verify_seal  # noqa: E402
from stalela_sdk.offline import FileKey, OfflineSealer  # noqa: E402

COUNT = 10_000


def _tenant(base_url: str, name: str) -> tuple[dict, str, dict]:
    with httpx.Client(base_url=base_url, timeout=60) as c:
        r = c.post("/v1/tenants", json={"name": name, "tax_id": f"NIF-{time.time_ns()}", "jurisdiction": "CD"},
                   headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
        assert r.status_code == 201, r.text
        tenant, api_key = r.json()["tenant"], r.json()["api_key"]
        r = c.post("/v1/outlets", json={"code": "MKT", "name": "Marché"}, headers={"Authorization": f"Bearer {api_key}"})
        assert r.status_code == 201, r.text
        return tenant, api_key, r.json()


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stalela.cli.main", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_10000_invoices_sealed_offline_all_merge_and_verify(request_, tmp_path, backend):
    url = request_.getfixturevalue(f"_{backend}_url")
    server = start_server({"STALELA_DATABASE_URL": url, "STALELA_OPERATOR_TOKEN": OPERATOR_TOKEN}, tmp_path / "var")
    try:
        tenant, api_key, outlet = _tenant(server.base_url, f"Offline {backend}")
        key = FileKey.create(tmp_path / "device.pem")
        with OfflineSealer(tmp_path / "journal.db", key, base_url=server.base_url, api_key=api_key) as sealer:
            device = sealer.register(outlet["id"], "Till 1", tenant["id"])
            claims = sealer.fetch_credential(block_size=COUNT)
            assert claims["sub"] == device["id"] and claims["block"]["last"] - claims["block"]["first"] + 1 == COUNT

            online, sealer.transport = sealer.transport, None  # offline: sealing needs no network at all
            started = time.perf_counter()
            invoices = [sealer.seal(request(i)) for i in range(COUNT)]
            sealing = time.perf_counter() - started
            sealer.transport = online

            started = time.perf_counter()
            outcomes = sealer.upload()
            merging = time.perf_counter() - started
            assert outcomes == {"merged": COUNT}, outcomes
            assert sealer.status()["invoices"] == {"merged": COUNT}
            # A replayed upload sends nothing more (everything has its receipt).
            assert sealer.upload() == {}
        print(f"\n{backend}: sealed {COUNT} offline in {sealing:.1f}s, merged in {merging:.1f}s")

        headers = {"Authorization": f"Bearer {api_key}"}
        with httpx.Client(base_url=server.base_url, timeout=60) as c:
            first, last = invoices[0], invoices[-1]
            for inv in (first, last):
                r = c.get(f"/v1/invoices/{inv['id']}", headers=headers)
                assert r.status_code == 200, r.text
                merged = r.json()
                assert merged["seal"]["hash"] == inv["seal"]["hash"]
                assert merged["fiscal_number"] == inv["fiscal_number"]
                assert verify_seal(merged["seal"], key.public_jwk())
            # The next online invoice continues the series after the block.
            r = c.post("/v1/invoices", json={**request(COUNT), "outlet_id": outlet["id"]}, headers=headers)
            assert r.status_code == 201, r.text
            assert r.json()["counter"] == claims["block"]["last"] + 1

        # --- VERIFIER (branch h-ledger): `stalela verify` on the live database and on an audit export -----
        env = {k: v for k, v in os.environ.items() if not k.startswith("STALELA_")}
        env.update({"STALELA_DATABASE_URL": url, "STALELA_MASTER_KEY": MASTER_KEY,
                    "STALELA_DATA_DIR": str(tmp_path / "var"), "STALELA_LOG_LEVEL": "WARNING"})
        live = _cli(env, "verify", "--tenant", tenant["id"], "--json")
        assert live.returncode == 0, live.stdout[-3000:] + live.stderr[-3000:]
        report = json.loads(live.stdout)
        assert report["valid"] is True and report["invoices"] >= COUNT + 1
        export = tmp_path / "audit.tar.gz"
        done = _cli(env, "export", "audit", "--tenant", tenant["id"], "-o", str(export), "--json")
        assert done.returncode == 0, done.stderr[-3000:]
        checked = _cli(env, "verify", str(export), "--json")
        assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
        assert json.loads(checked.stdout)["valid"] is True
    finally:
        server.stop()


@pytest.fixture
def request_(request):
    return request


def test_unused_numbers_are_returned_and_a_replay_gets_the_same_answer(request_, tmp_path):
    url = request_.getfixturevalue("_sqlite_url")
    server = start_server({"STALELA_DATABASE_URL": url, "STALELA_OPERATOR_TOKEN": OPERATOR_TOKEN}, tmp_path / "var")
    try:
        tenant, api_key, outlet = _tenant(server.base_url, "Offline return")
        key = FileKey.create(tmp_path / "device.pem")
        with OfflineSealer(tmp_path / "journal.db", key, base_url=server.base_url, api_key=api_key) as sealer:
            sealer.register(outlet["id"], "Till 2", tenant["id"])
            claims = sealer.fetch_credential(block_size=20)
            for i in range(5):
                sealer.seal(request(i))
            answer = sealer.return_unused()  # uploads the five first, then gives 6..20 back
            block = claims["block"]
            assert sealer.status()["invoices"] == {"merged": 5}
            assert answer["block_id"] == block["id"]
            assert sealer.return_unused() == answer  # journalled: asked again, nothing is sent twice
            with httpx.Client(base_url=server.base_url, timeout=60) as c:
                # The same statement posted again gets the same answer from the cloud.
                statement = sealer.journal.block(block["id"]).return_statement
                r = c.post(f"/v1/offline/blocks/{block['id']}/return", json=statement,
                           headers={"Authorization": f"Bearer {api_key}"})
                assert r.status_code in (200, 201), r.text
                assert r.json()["void"] == answer["void"]
            payload = statement["payload"]
            assert (payload["first"], payload["last"]) == (block["first"] + 5, block["last"])
    finally:
        server.stop()
