from __future__ import annotations

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from stalela.db.base import utcnow
from stalela.db.repository import Repository
from stalela.tenancy.models import ApiKey, Outlet, Tenant, TenantLogo

# Statements every seal group runs, built once (see db.repository._by_id).
_OUTLETS = select(Outlet).where(Outlet.id.in_(bindparam("ids", expanding=True)))


class TenantRepository(Repository[Tenant]):
    model = Tenant

    async def count(self) -> int:
        return (await self.session.execute(select(func.count()).select_from(Tenant))).scalar_one()

    async def count_by_status(self) -> list[tuple[str, int]]:
        stmt = select(Tenant.status, func.count()).group_by(Tenant.status)
        return [tuple(row) for row in await self.session.execute(stmt)]


class OutletRepository(Repository[Outlet]):
    model = Outlet

    async def get_in_tenant(self, tenant_id: str, outlet_id: str) -> Outlet | None:
        """For platform-bound sessions (no automatic tenant filter)."""
        stmt = select(Outlet).where(Outlet.tenant_id == tenant_id, Outlet.id == outlet_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def get_many(self, ids: set[str]) -> dict[str, Outlet]:
        if not ids:
            return {}
        rows = (await self.session.execute(_OUTLETS, {"ids": sorted(ids)})).scalars()
        return {o.id: o for o in rows}

    async def get_by_code(self, code: str) -> Outlet | None:
        return (await self.session.execute(select(Outlet).where(Outlet.code == code))).scalar_one_or_none()

    async def points_of_sale(self) -> list[tuple[str, int]]:
        """(outlet id, point-of-sale number) of the tenant's numbered outlets (Argentina)."""
        stmt = select(Outlet.id, Outlet.pos_number).where(Outlet.pos_number.is_not(None)).order_by(Outlet.pos_number)
        return [(outlet_id, pos) for outlet_id, pos in await self.session.execute(stmt)]

    async def get_by_pos_number(self, pos_number: int) -> Outlet | None:
        stmt = select(Outlet).where(Outlet.pos_number == pos_number)
        return (await self.session.execute(stmt)).scalar_one_or_none()


class ApiKeyRepository(Repository[ApiKey]):
    model = ApiKey

    async def find_active_by_hash(self, key_hash: str) -> tuple[ApiKey, Tenant] | None:
        """Runs on a platform-bound session: the tenant is what we are trying to learn."""
        stmt = (
            select(ApiKey, Tenant)
            .join(Tenant, Tenant.id == ApiKey.tenant_id)
            .where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
        )
        row = (await self.session.execute(stmt)).first()
        return (row[0], row[1]) if row else None

    async def touch(self, tenant_id: str, key_id: str) -> None:
        await self.session.execute(
            update(ApiKey)
            .where(ApiKey.tenant_id == tenant_id, ApiKey.id == key_id)
            .values(last_used_at=utcnow())
        )


class TenantLogoRepository:
    """The bound tenant's logo (one row at most; the tenancy helper adds the tenant filter)."""

    def __init__(self, session) -> None:  # noqa: ANN001
        self.session = session

    async def current(self) -> TenantLogo | None:
        return (await self.session.execute(select(TenantLogo))).scalar_one_or_none()

    async def save(self, logo: TenantLogo) -> TenantLogo:
        """Replaces the tenant's logo: a logo is not fiscal (no sealed hash covers it). One upsert, so two
        first uploads at once both succeed (the later wins) instead of one failing on the primary key."""
        values = {name: getattr(logo, name) for name in ("tenant_id", "content_type", "data", "sha256", "width",
                                                          "height")}
        values["updated_at"] = utcnow()
        insert = pg_insert if self.session.bind.dialect.name == "postgresql" else sqlite_insert
        stmt = insert(TenantLogo).values(**values)
        await self.session.execute(stmt.on_conflict_do_update(
            index_elements=["tenant_id"], set_={k: stmt.excluded[k] for k in values if k != "tenant_id"}))
        # populate_existing: a row this session loaded before the upsert is refreshed, not served stale.
        fresh = select(TenantLogo).execution_options(populate_existing=True)
        return (await self.session.execute(fresh)).scalar_one()

    async def remove(self) -> bool:
        existing = await self.current()
        if existing is None:
            return False
        await self.session.delete(existing)
        await self.session.flush()
        return True
