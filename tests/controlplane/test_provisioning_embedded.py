"""Embedded mode (`make run`: a SQLite control plane in data_dir, no template): a dedicated tenant gets its
own SQLite file in data_dir/tenants, provisioned by the server's own background work within seconds."""
from __future__ import annotations

import time

import httpx
import pytest

from stalela.controlplane import placement
from tests.conftest import OPERATOR_TOKEN
from tests.support.invoices import sample_invoice
from tests.support.server import start_server

pytestmark = pytest.mark.e2e
OP = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


@pytest.mark.parametrize("workers", [
    {},  # make run: one supervised background process
    {"STALELA_BACKGROUND_WORKERS": "0", "STALELA_INPROCESS_WORKERS": "true"},  # background work in the API process
], ids=["supervised", "inprocess"])
def test_dedicated_tenant_gets_its_own_file(tmp_path, workers):
    data_dir = tmp_path / "var"
    server = start_server({"STALELA_OPERATOR_TOKEN": OPERATOR_TOKEN, "STALELA_OUTBOX_POLL_SECONDS": "0.2"}
                          | workers, data_dir)
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            r = c.post("/v1/tenants", json={"name": "Fichier SARL", "tax_id": "F0000001", "tier": "dedicated"},
                       headers=OP)
            assert r.status_code == 202, r.text
            tenant_id = r.json()["tenant"]["id"]
            own = (data_dir / "tenants" / f"{placement.database_name(tenant_id)}.db").resolve()
            assert r.json()["tenant"]["database"] == f"sqlite+aiosqlite:///{own}"
            deadline = time.monotonic() + 30
            while (tenant := c.get(f"/v1/tenants/{tenant_id}", headers=OP).json())["status"] != "active":
                assert time.monotonic() < deadline, tenant
                assert tenant["provisioning"]["error"] is None, tenant
                time.sleep(0.2)
            assert tenant["server"] == f"sqlite:{own.parent}"
            assert own.exists()
            key = {"Authorization": f"Bearer {r.json()['api_key']}"}
            outlet = c.post("/v1/outlets", json={"code": "S1", "name": "Shop"}, headers=key)
            assert outlet.status_code == 201, outlet.text
            sealed = c.post("/v1/invoices", json=sample_invoice(outlet.json()["id"]), headers=key)
            assert sealed.status_code == 201, sealed.text
    finally:
        server.stop()
