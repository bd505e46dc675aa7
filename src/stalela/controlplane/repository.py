"""The control plane's SQL: the tenant registry's reads, provisioning jobs and moves. Sessions here are
platform-bound (the operator acts across tenants)."""
from __future__ import annotations

from sqlalchemy import func, select

from stalela.controlplane.models import TenantMove, TenantProvisioning
from stalela.db.repository import Repository
from stalela.tenancy.models import ApiKey, Tenant


class ProvisioningRepository(Repository[TenantProvisioning]):
    model = TenantProvisioning

    async def get(self, tenant_id: str) -> TenantProvisioning | None:
        return await self.session.get(TenantProvisioning, tenant_id)

    async def get_for_update(self, tenant_id: str) -> TenantProvisioning | None:
        stmt = select(TenantProvisioning).where(TenantProvisioning.tenant_id == tenant_id).with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def by_idempotency_key(self, key: str) -> TenantProvisioning | None:
        stmt = select(TenantProvisioning).where(TenantProvisioning.idempotency_key == key)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def of_tenants(self, tenant_ids: list[str]) -> dict[str, TenantProvisioning]:
        stmt = select(TenantProvisioning).where(TenantProvisioning.tenant_id.in_(tenant_ids))
        return {job.tenant_id: job for job in (await self.session.execute(stmt)).scalars()}

    async def unfinished(self) -> list[str]:
        stmt = select(TenantProvisioning.tenant_id).where(TenantProvisioning.status == "running")
        return list((await self.session.execute(stmt)).scalars())


class RegistryRepository(Repository[Tenant]):
    model = Tenant

    async def placements(self) -> list[str | None]:
        """Every dedicated tenant's placement (to spread new databases over the servers)."""
        stmt = select(Tenant.placement).where(Tenant.placement.is_not(None))
        return list((await self.session.execute(stmt)).scalars())

    async def dedicated(self) -> list[tuple[str, str]]:
        """(tenant id, placement) of every tenant whose data lives in a database of its own."""
        stmt = select(Tenant.id, Tenant.placement).where(Tenant.placement.is_not(None)).order_by(Tenant.id)
        return [(t, p) for t, p in await self.session.execute(stmt)]

    async def search(self, *, status: str | None, tier: str | None, jurisdiction: str | None, limit: int,
                     starting_after: str | None) -> tuple[list[Tenant], bool]:
        stmt = select(Tenant)
        if status:
            stmt = stmt.where(Tenant.status == status)
        if tier:
            stmt = stmt.where(Tenant.tier == tier)
        if jurisdiction:
            stmt = stmt.where(Tenant.jurisdiction == jurisdiction)
        return await self.page(stmt, limit=limit, starting_after=starting_after)

    async def first_api_key(self, tenant_id: str) -> str | None:
        """The id of the key the tenant was registered with (what a replayed registration names)."""
        stmt = (select(ApiKey.id).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at, ApiKey.id)
                .limit(1))
        return (await self.session.execute(stmt)).scalar()

    async def count_by_tier(self) -> list[tuple[str, int]]:
        stmt = select(Tenant.tier, func.count()).group_by(Tenant.tier)
        return [(t, n) for t, n in await self.session.execute(stmt)]


class MoveRepository(Repository[TenantMove]):
    model = TenantMove

    async def get_in_tenant(self, tenant_id: str, move_id: str) -> TenantMove | None:
        stmt = select(TenantMove).where(TenantMove.tenant_id == tenant_id, TenantMove.id == move_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def running(self, tenant_id: str | None = None) -> list[TenantMove]:
        stmt = select(TenantMove).where(TenantMove.status == "running")
        if tenant_id is not None:
            stmt = stmt.where(TenantMove.tenant_id == tenant_id)
        return list((await self.session.execute(stmt)).scalars())
