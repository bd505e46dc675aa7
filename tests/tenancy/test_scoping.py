"""The ORM's tenant filter (tenancy.context): every statement of a tenant-bound session sees that tenant
only, however many tenants this process has filtered for before (their filters are built once each)."""
from __future__ import annotations

from sqlalchemy import select

from stalela.accounts import schemas, service
from stalela.auth.principal import Principal
from stalela.tenancy.context import bind_platform, bind_tenant
from stalela.tenancy.models import Outlet
from stalela.tenancy.repository import OutletRepository


async def test_each_tenant_sees_only_its_own_rows_in_turn(db, settings):
    tenants, outlets = [], []
    for i in range(3):
        async with db.transaction() as session:
            await bind_platform(session)
            tenant, _ = await service.create_tenant(session, settings, schemas.TenantCreate(name=f"Scope {i}",
                                                                                          tax_id=f"S{i}"))
        async with db.transaction() as session:
            await bind_tenant(session, tenant.id)
            outlet = await service.create_outlet(session, Principal(kind="api_key", tenant_id=tenant.id,
                                                                    tenant_status="active"),
                                                 schemas.OutletCreate(code="S1", name="same code everywhere"))
        tenants.append(tenant.id)
        outlets.append(outlet.id)
    everyone = set(outlets)
    for _ in range(2):  # the second round reuses every tenant's filter
        for tenant_id, own in zip(tenants, outlets):
            async with db.transaction(readonly=True) as session:
                await bind_tenant(session, tenant_id)
                assert set(await OutletRepository(session).get_many(everyone)) == {own}
                seen = (await session.execute(select(Outlet.id).where(Outlet.code == "S1"))).scalars().all()
                assert seen == [own]
