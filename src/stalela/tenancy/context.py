"""The tenancy helper: the one place that scopes every query to the caller's tenant.

Two walls. First, every ORM statement issued on a session bound to a tenant gets
``tenant_id = :tenant`` added for every ``TenantOwned`` entity it touches (SQLAlchemy's
``with_loader_criteria``), so a repository cannot forget the filter. Second, on PostgreSQL the
tenant is also set for the transaction (``set_config('stalela.tenant_id', ..., true)``) and
row-level security policies with FORCE enforce it for any SQL at all, ORM or not.
"""
from __future__ import annotations

from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any, AsyncIterator

from sqlalchemy import String, event, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column, with_loader_criteria

from stalela.db.routing import DATA_BIND
from stalela.db.session import DATABASE, HOME_BIND, PINNED, READONLY_SESSION

TENANT_KEY = "tenant_id"
PLATFORM_KEY = "platform"
_BIND_PG = text("SELECT set_config('stalela.tenant_id', :t, true), set_config('stalela.platform', 'off', true), "
                "stalela_route(:t, :w)")
_PLACEMENT = text("SELECT placement FROM tenants WHERE id = :t")
_SET_TENANT = text("SELECT set_config('stalela.tenant_id', :t, true), set_config('stalela.platform', 'off', true)")
# The tenant's lock (an advisory lock key): every write takes it shared (here, and in ``stalela_route``), a
# move's switch exclusively (controlplane.move_repository).
TENANT_LOCK = "hashtextextended('stalela.tenant:' || :t, 0)"
# A dedicated database's connection commits apart from the control plane's (in either order), so a write
# holds the tenant's lock in its own database too: a move's freeze waits for that commit there.
_SET_TENANT_WRITE = text("SELECT set_config('stalela.tenant_id', :t, true), set_config('stalela.platform', 'off', true), "
                         f"pg_advisory_xact_lock_shared({TENANT_LOCK})")
_HOLD_TENANT = text(f"SELECT pg_advisory_xact_lock_shared({TENANT_LOCK})")
_SET_PLATFORM = text("SELECT set_config('stalela.platform', 'on', true), set_config('stalela.tenant_id', '', true)")


class TenantOwned:
    """Mixin for every tenant-owned table: ``tenant_id`` leads its primary key."""

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)


async def bind_tenant(session: AsyncSession, tenant_id: str) -> None:
    """Bind the session to ``tenant_id`` and route its data-plane statements to the tenant's database: the
    one routing function (docs/architecture.md, "Control plane and data plane"). On PostgreSQL it is one
    statement, as before the tiers: it sets the tenant for row-level security and reads the placement,
    after the tenant's shared lock for a write (a move's switch holds it exclusively)."""
    info = session.info
    info[TENANT_KEY] = tenant_id
    info.pop(PLATFORM_KEY, None)
    readonly = info.get(READONLY_SESSION, False)
    control = session.sync_session.bind  # the control plane's engine
    if control.dialect.name == "postgresql":
        row = await session.execute(_BIND_PG, {"t": tenant_id, "w": not readonly}, bind_arguments={"bind": control})
        placement = row.one()[2]
    else:
        placement = (await session.execute(_PLACEMENT, {"t": tenant_id}, bind_arguments={"bind": control})).scalar()
    data = info[HOME_BIND] if info.get(PINNED) else info[DATABASE].fleet.data_bind(placement, readonly)
    if data is None:
        info.pop(DATA_BIND, None)
        return
    info[DATA_BIND] = data
    if data.dialect.name == "postgresql":
        await session.execute(_SET_TENANT if readonly else _SET_TENANT_WRITE, {"t": tenant_id})  # text(): data plane


async def hold_tenant_shared(session: AsyncSession, tenant_id: str) -> None:
    """Take the tenant's lock shared, as every write of the tenant does (``bind_tenant``), before locking the
    tenant's row. For platform actions that lock the row and then write the tenant's data (an operator's suspend
    and its audit entry): a move's switch takes the lock exclusively and then updates the row, so the other
    order (the row, then the lock) deadlocks with it. Nothing to do on SQLite (one writer at a time)."""
    control = session.sync_session.bind
    if control.dialect.name == "postgresql":
        await session.execute(_HOLD_TENANT, {"t": tenant_id}, bind_arguments={"bind": control})


async def bind_platform(session: AsyncSession) -> None:
    """Control-plane access (operator API, API key lookup): no tenant filter, RLS bypass flag on. A
    dedicated database's own session (its workers) returns to that database for data-plane statements."""
    info = session.info
    info.pop(TENANT_KEY, None)
    info[PLATFORM_KEY] = True
    control = session.sync_session.bind
    home = info.get(HOME_BIND)
    if home is None:
        info.pop(DATA_BIND, None)
    else:
        info[DATA_BIND] = home
    if control.dialect.name == "postgresql":
        await session.execute(_SET_PLATFORM, bind_arguments={"bind": control})
    if home is not None and home.dialect.name == "postgresql":
        await session.execute(_SET_PLATFORM)


@asynccontextmanager
async def acting_as(session: AsyncSession, tenant_id: str) -> AsyncIterator[None]:
    """Run the block bound to ``tenant_id`` (its rows, its database), then give the session its binding back:
    for platform work that writes one tenant's data (an operator's action in the tenant's audit log, the
    billing cycle switching between the billed tenant and the issuer)."""
    previous, platform = current_tenant(session), bool(session.info.get(PLATFORM_KEY))
    if previous == tenant_id:
        yield
        return
    await bind_tenant(session, tenant_id)
    try:
        yield
    finally:
        if previous is not None:
            await bind_tenant(session, previous)
        elif platform:
            await bind_platform(session)
        else:  # it was bound to nothing: back to nothing (its home data plane, no tenant filter)
            session.info.pop(TENANT_KEY, None)
            home = session.info.get(HOME_BIND)
            if home is None:
                session.info.pop(DATA_BIND, None)
            else:
                session.info[DATA_BIND] = home


def current_tenant(session: AsyncSession) -> str | None:
    return session.info.get(TENANT_KEY)


@lru_cache(maxsize=4096)
def _tenant_criteria(tenant_id: str) -> Any:
    """The option that filters every TenantOwned entity to ``tenant_id``; built once per tenant, not once
    per statement (it is immutable, and building it was a fifth of a small query's cost)."""
    return with_loader_criteria(TenantOwned, lambda cls: cls.tenant_id == tenant_id, include_aliases=True)


@event.listens_for(Session, "do_orm_execute")
def _scope_to_tenant(state: ORMExecuteState) -> None:
    tenant_id = state.session.info.get(TENANT_KEY)
    if tenant_id is None or not (state.is_select or state.is_update or state.is_delete):
        return
    state.statement = state.statement.options(_tenant_criteria(tenant_id))
