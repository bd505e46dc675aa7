"""The sealing promise against real servers: many clients, several processes, one outlet.

300 invoices from 30 concurrent clients against 2 server processes, all to one outlet: counters are
exactly 1..300, every prev_hash links, every signature verifies with the JWK the server publishes.
The same flow through PKCS#11 on SoftHSM2.
"""
from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from stalela.fiscal.reports.audit import verify_export
from tests.conftest import OPERATOR_TOKEN
from tests.support.invoices import sample_invoice
from tests.support.server import start_server
from tests.support.verify import check_chain, verify_independently


async def _hammer(base_url: str, *, clients: int, per_client: int, retry_key: bool = False) -> list[dict]:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as c:
        op = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        r = await c.post("/v1/tenants", json={"name": "Live SARL", "tax_id": "L1", "jurisdiction": "CD"}, headers=op)
        assert r.status_code == 201, r.text
        key = {"Authorization": f"Bearer {r.json()['api_key']}"}
        outlet = (await c.post("/v1/outlets", json={"code": "LIVE", "name": "Live"}, headers=key)).json()

        async def client(n: int) -> list[dict]:
            out = []
            for i in range(per_client):
                r = await c.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=key)
                assert r.status_code == 201, r.text
                out.append(r.json())
            return out

        results = [inv for batch in await asyncio.gather(*[client(n) for n in range(clients)]) for inv in batch]
        stored = []
        cursor = None
        while True:
            params = {"limit": 100, "outlet_id": outlet["id"]} | ({"starting_after": cursor} if cursor else {})
            page = (await c.get("/v1/invoices", params=params, headers=key)).json()
            stored += page["data"]
            if not page["has_more"]:
                break
            cursor = page["data"][-1]["id"]
        jwks = {}
        for inv in results:
            kid = inv["seal"]["key_id"]
            if kid not in jwks:
                jwks[kid] = (await c.get(f"/v1/keys/{kid}")).json()
            verify_independently(inv, jwks[kid])
        assert sorted(i["id"] for i in stored) == sorted(i["id"] for i in results)
        return results


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_300_invoices_30_clients_2_processes_one_outlet(request, tmp_path, backend):
    url = request.getfixturevalue(f"_{backend}_url")
    server = start_server({"STALELA_DATABASE_URL": url, "STALELA_OPERATOR_TOKEN": OPERATOR_TOKEN},
                          tmp_path / "var", workers=2)
    try:
        invoices = asyncio.run(_hammer(server.base_url, clients=30, per_client=10))
        assert len(invoices) == 300
        check_chain(invoices)
        assert '"level": "error"' not in server.log()
    finally:
        server.stop()


def test_seal_flow_on_softhsm2(request, tmp_path, softhsm_token):
    url = request.getfixturevalue("_postgres_url")
    env = {
        "STALELA_DATABASE_URL": url,
        "STALELA_OPERATOR_TOKEN": OPERATOR_TOKEN,
        "STALELA_SIGNER_BACKEND": "pkcs11",
        "STALELA_PKCS11_LIBRARY": softhsm_token.library_path,
        "STALELA_PKCS11_TOKEN_LABEL": softhsm_token.token_label,
        "STALELA_PKCS11_PIN": softhsm_token.pin,
        "SOFTHSM2_CONF": str(softhsm_token.conf_path),
    }
    server = start_server(env, tmp_path / "var", workers=2)
    try:
        invoices = asyncio.run(_hammer(server.base_url, clients=8, per_client=5))
        check_chain(invoices)
    finally:
        server.stop()


def test_audit_export_built_in_the_background(tmp_path, _sqlite_url):
    server = start_server({"STALELA_DATABASE_URL": _sqlite_url, "STALELA_OPERATOR_TOKEN": OPERATOR_TOKEN},
                          tmp_path / "var")
    try:
        asyncio.run(_hammer(server.base_url, clients=2, per_client=3))
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            op = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
            r = c.post("/v1/tenants", json={"name": "Exp", "tax_id": "E1", "jurisdiction": "CD"}, headers=op)
            key = {"Authorization": f"Bearer {r.json()['api_key']}"}
            outlet = c.post("/v1/outlets", json={"code": "E", "name": "E"}, headers=key).json()
            for _ in range(3):
                assert c.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=key).status_code == 201
            assert c.post("/v1/ledger/checkpoints", headers=key).status_code == 201
            job = c.post("/v1/exports/audit", json={}, headers=key).json()
            deadline = time.monotonic() + 30
            while (state := c.get(f"/v1/exports/{job['id']}", headers=key).json())["status"] != "ready":
                assert state["status"] in ("pending", "running") and time.monotonic() < deadline, state
                time.sleep(0.2)
            (tmp_path / "e.tar.gz").write_bytes(c.get(state["download_url"], headers=key).content)
        report = verify_export(tmp_path / "e.tar.gz")
        assert report.valid and report.invoices == 3 and report.checkpoints_matched == 1
    finally:
        server.stop()
