"""GET /v1/sync/status for an Argentine tenant: its outlets reach ARCA with the tenant's credentials
(no DGI device), and ARCA's rejections are counted apart."""
from __future__ import annotations

from tests.authority.arca.conftest import make_certificate, pem
from tests.support.ar import CUIT, ar_outlet, ar_tenant, receipt, record_outcome, seal


async def test_sync_status_says_arca_and_counts_rejections(app, client):
    _, headers = await ar_tenant(client)
    outlet = await ar_outlet(client, headers)
    first, second, _ = [await seal(client, headers, receipt(outlet["id"])) for _ in range(3)]
    await record_outcome(app, first, cae="75123456789012")
    await record_outcome(app, second, errors=((10048, "Importe total mal calculado"),))
    status = (await client.get("/v1/sync/status", headers=headers)).json()["outlets"]
    assert len(status) == 1
    row = status[0]
    assert row["device"] == "arca" and row["arca"] == "not_configured", row
    assert (row["pending"], row["acknowledged"], row["rejected"], row["failed"]) == (1, 1, 1, 0)
    assert row["last_success_at"] is not None and row["oldest_pending_seconds"] is not None

    cert, key = make_certificate(CUIT)
    r = await client.put("/v1/authority/arca/credentials", headers=headers, json={
        "certificate": pem(cert), "private_key": pem(key), "environment": "homologation"})
    assert r.status_code == 200, r.text
    row = (await client.get("/v1/sync/status", headers=headers)).json()["outlets"][0]
    assert row["arca"] == "configured"

    expired, old_key = make_certificate(CUIT, days=-1, not_before_days=-30)
    r = await client.put("/v1/authority/arca/credentials", headers=headers, json={
        "certificate": pem(expired), "private_key": pem(old_key), "environment": "homologation"})
    if r.status_code == 200:  # an expired certificate may be refused outright: then nothing changed
        assert (await client.get("/v1/sync/status", headers=headers)).json()["outlets"][0]["arca"] == "expired"


async def test_a_drc_tenant_still_names_its_device(client, new_tenant):
    _, headers = await new_tenant("Boutique SARL", "A1234567Z")
    outlet = (await client.post("/v1/outlets", json={"code": "KIN1", "name": "Gombe"}, headers=headers)).json()
    from tests.support.invoices import sample_invoice
    r = await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)
    assert r.status_code == 201
    row = (await client.get("/v1/sync/status", headers=headers)).json()["outlets"][0]
    assert row["device"] == "none" and "arca" not in row and row["rejected"] == 0
