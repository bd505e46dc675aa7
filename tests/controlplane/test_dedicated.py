"""The dedicated tier end to end: a tenant provisioned into a database of its own serves every request from
there, and the shared database never sees its rows (nor the reverse)."""
from __future__ import annotations

from sqlalchemy import text

from tests.controlplane.conftest import provisioned, seal, shared


async def _count(db, sql: str, **params) -> int:
    async with db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT set_config('stalela.platform', 'on', false)"))
        return (await conn.execute(text(sql), params)).scalar()


async def test_dedicated_tenant_lives_in_its_own_database(tier_client, tier_app, operator_headers):
    tenant, headers = await provisioned(tier_client, tier_app, operator_headers)
    r = await tier_client.get(f"/v1/tenants/{tenant['id']}", headers=operator_headers)
    assert r.json()["status"] == "active" and r.json()["provisioning"]["status"] == "completed"
    assert r.json()["database"] and r.json()["server"]
    invoice = await seal(tier_client, tenant, headers)
    assert invoice["seal"]["payload"]["counter"] == 1

    control = tier_app.state.db
    own = control.fleet.database(r.json()["database"])
    assert await _count(own, "SELECT count(*) FROM invoices WHERE tenant_id = :t", t=tenant["id"]) == 1
    assert await _count(control, "SELECT count(*) FROM invoices WHERE tenant_id = :t", t=tenant["id"]) == 0
    # Found in the control plane before the tenant's database is known: its API key and public key.
    assert await _count(control, "SELECT count(*) FROM api_keys WHERE tenant_id = :t", t=tenant["id"]) == 1
    key_id = invoice["seal"]["key_id"]
    assert (await tier_client.get(f"/v1/keys/{key_id}")).status_code == 200

    r = await tier_client.get(f"/v1/invoices/{invoice['id']}", headers=headers)
    assert r.status_code == 200 and r.json()["id"] == invoice["id"]
    r = await tier_client.get("/v1/invoices", headers=headers)
    assert [i["id"] for i in r.json()["data"]] == [invoice["id"]]


async def test_keys_never_cross_tiers(tier_client, tier_app, operator_headers):
    dedicated, d_headers = await provisioned(tier_client, tier_app, operator_headers)
    common, s_headers = await shared(tier_client, operator_headers)
    d_invoice = await seal(tier_client, dedicated, d_headers)
    s_invoice = await seal(tier_client, common, s_headers)
    assert (await tier_client.get(f"/v1/invoices/{s_invoice['id']}", headers=d_headers)).status_code == 404
    assert (await tier_client.get(f"/v1/invoices/{d_invoice['id']}", headers=s_headers)).status_code == 404
    assert (await tier_client.get(f"/v1/outlets/{common['outlet']}", headers=d_headers)).status_code == 404
    assert (await tier_client.get(f"/v1/outlets/{dedicated['outlet']}", headers=s_headers)).status_code == 404


async def test_provisioning_tenant_is_refused_until_active(tier_client, tier_app, operator_headers):
    r = await tier_client.post("/v1/tenants", json={"name": "Lent SARL", "tax_id": "L0000001B", "tier": "dedicated"},
                               headers=operator_headers)
    assert r.status_code == 202
    headers = {"Authorization": f"Bearer {r.json()['api_key']}"}
    r2 = await tier_client.get("/v1/outlets", headers=headers)
    assert r2.status_code == 409 and r2.json()["code"] == "tenant_provisioning"
    assert r2.headers["Retry-After"] == "2"
    from stalela.controlplane import provisioning

    await provisioning.run(tier_app.state.db, tier_app.state.settings, r.json()["tenant"]["id"])
    assert (await tier_client.get("/v1/outlets", headers=headers)).status_code == 200
