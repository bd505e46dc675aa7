from __future__ import annotations

from datetime import date, datetime
from typing import Any, AsyncIterator, TypeVar

from sqlalchemy import func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.db.repository import Repository
from stalela.fiscal.core import offline as core_offline
from stalela.fiscal.invoices.models import Invoice
from stalela.fiscal.ledger.models import LedgerEvent
from stalela.fiscal.reports.models import ZReport
from stalela.tenancy.models import Outlet

PAGE = 500
Leaves = tuple[int, int]  # first and last leaf index, both included
Leaf = TypeVar("Leaf", Invoice, LedgerEvent)


class ZReportRepository(Repository[ZReport]):
    model = ZReport

    async def voids_since(self, outlet_id: str, since_leaf: int, since_time: datetime | None) -> list[LedgerEvent]:
        """The outlet's voids and un-voids sealed at or after leaf ``since_leaf``, or at or after ``since_time``."""
        stmt = select(LedgerEvent).where(LedgerEvent.outlet_id == outlet_id,
                                         LedgerEvent.kind.in_((core_offline.VOID, core_offline.UNVOID)))
        if since_time is not None:
            stmt = stmt.where(or_(LedgerEvent.leaf_index >= since_leaf, LedgerEvent.created_at >= since_time))
        return list((await self.session.execute(stmt.order_by(LedgerEvent.leaf_index))).scalars())

    async def for_day(self, outlet_id: str, day: date) -> ZReport | None:
        stmt = select(ZReport).where(ZReport.outlet_id == outlet_id, ZReport.business_day == day)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def latest(self, outlet_id: str) -> ZReport | None:
        stmt = select(ZReport).where(ZReport.outlet_id == outlet_id).order_by(ZReport.z_counter.desc()).limit(1)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def for_outlet(self, outlet_id: str) -> list[ZReport]:
        stmt = select(ZReport).where(ZReport.outlet_id == outlet_id).order_by(ZReport.z_counter)
        return list((await self.session.execute(stmt)).scalars())

    async def boundaries(self, outlet_id: str | None, since: date | None) -> list[tuple[str, int, date, int]]:
        """(outlet, z_counter, day, counter_to) of the Zs on or after ``since``, oldest first."""
        stmt = select(ZReport.outlet_id, ZReport.z_counter, ZReport.business_day, ZReport.counter_to)
        if outlet_id is not None:
            stmt = stmt.where(ZReport.outlet_id == outlet_id)
        if since is not None:
            stmt = stmt.where(ZReport.business_day >= since)
        return [tuple(r) for r in await self.session.execute(stmt.order_by(ZReport.outlet_id, ZReport.z_counter))]

    async def last_days(self, outlet_id: str | None) -> dict[str, date]:
        """Each outlet's latest closed day."""
        stmt = select(ZReport.outlet_id, func.max(ZReport.business_day)).group_by(ZReport.outlet_id)
        if outlet_id is not None:
            stmt = stmt.where(ZReport.outlet_id == outlet_id)
        return {o: d for o, d in await self.session.execute(stmt)}

    async def search(
        self, *, outlet_id: str | None, only: frozenset[str] | set[str] | None, day_gte: date | None,
        day_lt: date | None, limit: int, starting_after: str | None,
    ) -> tuple[list[ZReport], bool]:
        stmt = select(ZReport)
        if only is not None:
            stmt = stmt.where(ZReport.outlet_id.in_(sorted(only)))
        if outlet_id:
            stmt = stmt.where(ZReport.outlet_id == outlet_id)
        if day_gte:
            stmt = stmt.where(ZReport.business_day >= day_gte)
        if day_lt:
            stmt = stmt.where(ZReport.business_day < day_lt)
        return await self.page(stmt, limit=limit, starting_after=starting_after)


async def invoice_pages(
    session, *, outlet_id: str | None, issued_from: datetime | None = None,  # noqa: ANN001
    issued_to: datetime | None = None, page: int | None = None,
) -> AsyncIterator[list[Invoice]]:
    """Invoices in sealing (leaf) order, a page at a time (keyset on leaf_index): never all at once."""
    page = page or PAGE
    after = -1
    while True:
        stmt = select(Invoice).where(Invoice.leaf_index > after)
        if outlet_id is not None:
            stmt = stmt.where(Invoice.outlet_id == outlet_id)
        if issued_from is not None:
            stmt = stmt.where(Invoice.issued_at >= issued_from)
        if issued_to is not None:
            stmt = stmt.where(Invoice.issued_at < issued_to)
        rows = list((await session.execute(stmt.order_by(Invoice.leaf_index).limit(page))).scalars())
        if not rows:
            return
        yield rows
        for row in rows:  # a month of invoices must not pile up in the identity map
            session.expunge(row)
        after = rows[-1].leaf_index


async def count_invoices(
    session, *, outlet_id: str | None, issued_from: datetime, issued_to: datetime  # noqa: ANN001
) -> int:
    stmt = select(func.count()).select_from(Invoice).where(Invoice.issued_at >= issued_from,
                                                          Invoice.issued_at < issued_to)
    if outlet_id is not None:
        stmt = stmt.where(Invoice.outlet_id == outlet_id)
    return int((await session.execute(stmt)).scalar_one())


async def tenant_outlets(session) -> list[Outlet]:  # noqa: ANN001
    return list((await session.execute(select(Outlet).order_by(Outlet.code))).scalars())


# --- the audit export's reads (fiscal/reports/export.py) ------------------------------------------------


async def leaf_range(session: AsyncSession, tenant_id: str, date_from: datetime | None,
                     date_to: datetime | None) -> Leaves | None:
    """The first and last leaf appended to the tenant's log in ``[date_from, date_to)``: invoices by
    ``coalesce(merged_at, issued_at)`` (a merged offline invoice's ``issued_at`` is the device's time),
    ledger events by ``created_at``. None when nothing was."""
    when = func.coalesce(Invoice.merged_at, Invoice.issued_at)
    bounds = []
    for model, stamp in ((Invoice, when), (LedgerEvent, LedgerEvent.created_at)):
        stmt = select(func.min(model.leaf_index), func.max(model.leaf_index)).where(model.tenant_id == tenant_id)
        if date_from is not None:
            stmt = stmt.where(stamp >= date_from)
        if date_to is not None:
            stmt = stmt.where(stamp < date_to)
        low, high = (await session.execute(stmt)).one()
        if low is not None:
            bounds.append((low, high))
    if not bounds:
        return None
    return min(b[0] for b in bounds), max(b[1] for b in bounds)


async def leaf_pages(session: AsyncSession, model: type[Leaf], *, leaves: Leaves | None = None,
                     page: int = PAGE) -> AsyncIterator[list[Leaf]]:
    """Invoices or ledger events (``model``) in leaf (sealing) order, a page at a time (keyset pagination on
    leaf_index); ``leaves``: only those in that range."""
    after = -1 if leaves is None else leaves[0] - 1
    while True:
        stmt = select(model).where(model.leaf_index > after)
        if leaves is not None:
            stmt = stmt.where(model.leaf_index <= leaves[1])
        rows = list((await session.execute(stmt.order_by(model.leaf_index).limit(page))).scalars())
        if not rows:
            return
        yield rows
        after = rows[-1].leaf_index


# The credentials are the offline package's table (stalela.offline sits above fiscal, which may not import
# it): read by name, with the tenant filter written out, as RLS enforces it on PostgreSQL anyway.
_CREDENTIALS = text("SELECT jti, token, device_id, block_id, revoked_at, revocation_reason FROM device_credentials "
                    "WHERE tenant_id = :t ORDER BY jti")


async def credential_rows(session: AsyncSession, tenant_id: str) -> list[Any]:
    """(jti, token, device_id, block_id, revoked_at, revocation_reason) of every credential of the tenant."""
    return list((await session.execute(_CREDENTIALS, {"t": tenant_id})).all())
