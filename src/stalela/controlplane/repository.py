"""The control plane's SQL: the tenant registry's reads, provisioning jobs and moves. Sessions here are
platform-bound (the operator acts across tenants)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

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

    async def dedicated_serving(self) -> list[tuple[str, str]]:
        """(tenant id, placement) of the dedicated tenants whose database is ready (provisioned): those the
        background workers serve."""
        stmt = (select(Tenant.id, Tenant.placement)
                .where(Tenant.placement.is_not(None), Tenant.status != "provisioning").order_by(Tenant.id))
        return [(t, p) for t, p in await self.session.execute(stmt)]

    async def search(self, *, status: str | None, tier: str | None, jurisdiction: str | None, limit: int,
                     starting_after: str | None) -> tuple[list[Tenant], bool]:
        scope = stmt = select(Tenant)
        if status:
            stmt = stmt.where(Tenant.status == status)
        if tier:
            stmt = stmt.where(Tenant.tier == tier)
        if jurisdiction:
            stmt = stmt.where(Tenant.jurisdiction == jurisdiction)
        # Status and tier change (a move, a suspension): a cursor needs only to be a tenant.
        return await self.page(stmt, limit=limit, starting_after=starting_after, scope=scope)

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

    async def page_of_tenant(self, tenant_id: str, *, limit: int, starting_after: str | None):  # noqa: ANN201
        stmt = select(TenantMove).where(TenantMove.tenant_id == tenant_id)
        return await self.page(stmt, limit=limit, starting_after=starting_after)

    async def unpurged_source(self, tenant_id: str, placement: str | None) -> bool:
        """Is ``placement`` the source of a completed move of the tenant that was not purged?"""
        stmt = select(TenantMove.id).where(TenantMove.tenant_id == tenant_id, TenantMove.status == "completed",
                                           TenantMove.purged_at.is_(None),
                                           TenantMove.source.is_(None) if placement is None
                                           else TenantMove.source == placement).limit(1)
        return (await self.session.execute(stmt)).first() is not None

    async def running(self, tenant_id: str | None = None) -> list[TenantMove]:
        stmt = select(TenantMove).where(TenantMove.status == "running")
        if tenant_id is not None:
            stmt = stmt.where(TenantMove.tenant_id == tenant_id)
        return list((await self.session.execute(stmt)).scalars())


# Statements on plain connections: a server's maintenance database (CREATE DATABASE runs outside any
# transaction), a session advisory lock held across transactions, a dedicated database's copy of a row.

async def database_exists(conn: AsyncConnection, name: str) -> bool:
    return bool((await conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})).scalar())


async def create_database(conn: AsyncConnection, name: str) -> None:
    await conn.execute(text(f'CREATE DATABASE "{name}"'))  # the caller checked ``name`` is a safe identifier


async def drop_database(conn: AsyncConnection, name: str) -> None:
    await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# Two int4 keys: apart from the tenants' own one-key (bigint) advisory locks.
_LOCK_SPACE = 1735290


async def try_lock(conn: AsyncConnection, key: str) -> bool:
    return bool((await conn.execute(text("SELECT pg_try_advisory_lock(:s, hashtext(:k))"),
                                    {"s": _LOCK_SPACE, "k": key})).scalar())


async def unlock(conn: AsyncConnection, key: str) -> None:
    await conn.execute(text("SELECT pg_advisory_unlock(:s, hashtext(:k))"), {"s": _LOCK_SPACE, "k": key})


async def upsert_tenant_row(conn: AsyncConnection, row: dict[str, Any]) -> None:
    """The tenant's row in its own database, inserted or brought up to date (platform access: RLS)."""
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        await conn.execute(text("SELECT set_config('stalela.platform', 'on', true)"))
    stmt = (pg_insert if postgres else sqlite_insert)(Tenant.__table__).values(**row)
    await conn.execute(stmt.on_conflict_do_update(index_elements=["id"],
                                                  set_={k: stmt.excluded[k] for k in row if k != "id"}))
