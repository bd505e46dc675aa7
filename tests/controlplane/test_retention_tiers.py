"""Retention for a dedicated tenant: its refresh tokens and invitations are in the control plane, its marks in
its own database, and a run marks then purges them all the same."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from stalela.db.base import utcnow
from stalela.privacy import retention_service
from tests.controlplane.conftest import provisioned
from tests.support.walk import data_rows, database_of


async def _invitations(db, tenant_id: str) -> int:
    async with db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT set_config('stalela.platform', 'on', false)"))
        return (await conn.execute(text("SELECT count(*) FROM invitations WHERE tenant_id = :t"),
                                   {"t": tenant_id})).scalar()


async def test_a_run_marks_and_purges_control_plane_rows_of_a_dedicated_tenant(tier_client, tier_app,
                                                                               operator_headers):
    app, settings = tier_app, tier_app.state.settings
    tenant, headers = await provisioned(tier_client, app, operator_headers)
    r = await tier_client.post("/v1/users/invitations", json={"email": "late@dedie.cd", "name": "Late", "role": "cashier"},
                               headers=headers)
    assert r.status_code == 201, r.text
    own = await database_of(tier_client, app, operator_headers, tenant["id"])
    later = utcnow() + timedelta(days=400)

    run = await retention_service.run_tenant(app.state.db, settings, tenant["id"], at=later)
    assert run["purgers"][[p["purger"] for p in run["purgers"]].index("expired_invitations")]["mark"]["count"] == 1
    assert (await data_rows(own, tenant["id"])).get("retention_marks") == 1  # the mark: in the tenant's database
    assert "retention_marks" not in await data_rows(app.state.db, tenant["id"])
    assert await _invitations(app.state.db, tenant["id"]) == 1

    after_grace = later + timedelta(days=settings.retention_grace_days + 1)
    await retention_service.run_tenant(app.state.db, settings, tenant["id"], at=after_grace)
    assert await _invitations(app.state.db, tenant["id"]) == 0
    assert "retention_marks" not in await data_rows(own, tenant["id"])


async def test_a_run_leaves_out_tenants_still_provisioning(tier_client, tier_app, operator_headers):
    """Their database may not exist yet: a run used to fail on each of them ("database does not exist")."""
    r = await tier_client.post("/v1/tenants", json={"name": "Pas prêt SARL", "tax_id": "P0000001B", "tier": "dedicated"},
                               headers=operator_headers)
    assert r.status_code == 202 and r.json()["tenant"]["status"] == "provisioning", r.text
    waiting = r.json()["tenant"]["id"]
    ready, _ = await provisioned(tier_client, tier_app, operator_headers)
    run = await retention_service.run_all(tier_app.state.db, tier_app.state.settings)
    # (Earlier tests' dedicated tenants share this control plane, their databases gone: they may fail here.)
    assert waiting not in run["failed"] and waiting not in run["tenants"]
    assert ready["id"] in run["tenants"]
