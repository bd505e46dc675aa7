"""A real server on loopback: demo bootstrap on SQLite, and several worker processes on PostgreSQL."""
from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import OPERATOR_TOKEN
from tests.support.server import start_server


def test_first_start_creates_a_demo_tenant_whose_curl_works(tmp_path):
    server = start_server({"STALELA_DEMO": "true", "STALELA_LOG_LEVEL": "INFO"}, tmp_path / "var")
    try:
        creds = json.loads((tmp_path / "var" / "demo-credentials.json").read_text())
        assert (tmp_path / "var" / "demo-credentials.json").stat().st_mode & 0o077 == 0
        r = httpx.get(f"{server.base_url}/v1/outlets", headers={"Authorization": f"Bearer {creds['api_key']}"})
        assert r.status_code == 200
        assert [o["id"] for o in r.json()["data"]] == [creds["outlet_id"]]
        assert r.headers["x-request-id"]
        # The demo banner prints the key on purpose; no log line ever carries a secret.
        log_lines = [line for line in server.log().splitlines() if line.startswith("{")]
        assert log_lines and not any("sk_" in line for line in log_lines)
    finally:
        server.stop()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_operator_flow_against_two_worker_processes(request, tmp_path, backend):
    url = request.getfixturevalue(f"_{backend}_url")
    server = start_server({"STALELA_DATABASE_URL": url, "STALELA_OPERATOR_TOKEN": OPERATOR_TOKEN},
                          tmp_path / "var", workers=2)
    try:
        with httpx.Client(base_url=server.base_url, timeout=10) as c:
            op = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
            r = c.post("/v1/tenants", json={"name": "Live SARL", "tax_id": "L123", "jurisdiction": "CD"}, headers=op)
            assert r.status_code == 201, r.text
            key = {"Authorization": f"Bearer {r.json()['api_key']}"}
            codes = [f"S{i}" for i in range(20)]
            for code in codes:
                assert c.post("/v1/outlets", json={"code": code, "name": code}, headers=key).status_code == 201
            listed = c.get("/v1/outlets", params={"limit": 100}, headers=key).json()["data"]
            assert sorted(o["code"] for o in listed) == sorted(codes)
            assert c.get("/openapi.json").json()["info"]["title"] == "Stalela"
    finally:
        server.stop()
