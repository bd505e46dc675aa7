"""All SQL of analytics: sums over the additive rows sealing and the authority agent keep (never the invoices).

Sessions are bound to the caller's tenant: the tenancy helper adds ``tenant_id`` to every statement (and row
-level security enforces it on PostgreSQL). Every read is a range of the rows' primary key
``(tenant_id, kind, period, ...)`` or ``(tenant_id, day, ...)``: its cost follows the days asked for and the
outlets, types, tax groups and buyers in them, never the number of invoices.
"""
from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import case, delete, func, insert, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.authority.models import AuthorityTally
from stalela.authority.outcomes import BUCKETS
from stalela.fiscal.invoices.models import Invoice, InvoiceSync, SalesTally
from stalela.fiscal.ledger.models import MerkleLog
from stalela.tenancy.models import Outlet

S = SalesTally
A = AuthorityTally
# A credit note's row counts only credit notes (a type is one or the other): its amount is what was credited.
_CREDITED = -func.sum(case((S.credit_count > 0, S.amount), else_=0))
_SUMS = (func.sum(S.count), func.sum(S.credit_count), func.sum(S.amount), _CREDITED, func.sum(S.base),
         func.sum(S.vat))


class AnalyticsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _sales(self, kind: str, start: date, end: date, outlets: list[str] | None, *columns: Any) -> Any:
        stmt = select(*columns, *_SUMS).where(S.kind == kind, S.period >= start, S.period <= end)
        if outlets is not None:
            stmt = stmt.where(S.outlet_id.in_(outlets))
        return stmt.group_by(*columns)

    async def per_period(self, kind: str, start: date, end: date, outlets: list[str] | None) -> list[tuple]:
        """(period, currency, count, credit_count, amount, credited, base, vat) per period and currency."""
        stmt = self._sales(kind, start, end, outlets, S.period, S.currency)
        return [tuple(r) for r in await self.session.execute(stmt)]

    async def per_key(self, kind: str, start: date, end: date, outlets: list[str] | None) -> list[tuple]:
        """(currency, key, count, credit_count, amount, credited, base, vat) per currency and key."""
        stmt = self._sales(kind, start, end, outlets, S.currency, S.key)
        return [tuple(r) for r in await self.session.execute(stmt)]

    async def per_outlet(self, kind: str, start: date, end: date, outlets: list[str] | None) -> list[tuple]:
        """(outlet, currency, count, credit_count, amount, credited, base, vat) per outlet and currency."""
        stmt = self._sales(kind, start, end, outlets, S.outlet_id, S.currency)
        return [tuple(r) for r in await self.session.execute(stmt)]

    async def currencies(self, kind: str, start: date, end: date, outlets: list[str] | None) -> list[str]:
        stmt = select(S.currency).where(S.kind == kind, S.period >= start, S.period <= end)
        if outlets is not None:
            stmt = stmt.where(S.outlet_id.in_(outlets))
        return sorted((await self.session.execute(stmt.distinct())).scalars())

    async def top_keys(self, kind: str, start: date, end: date, outlets: list[str] | None, currency: str,
                       limit: int) -> list[tuple]:
        """The ``limit`` keys with the largest net amount in ``currency``: (key, count, credit_count, amount,
        latest ref), largest first (ties by key)."""
        amount = func.sum(S.amount)
        stmt = (select(S.key, func.sum(S.count), func.sum(S.credit_count), amount, func.max(S.ref))
                .where(S.kind == kind, S.period >= start, S.period <= end, S.currency == currency))
        if outlets is not None:
            stmt = stmt.where(S.outlet_id.in_(outlets))
        stmt = stmt.group_by(S.key).order_by(amount.desc(), S.key).limit(limit)
        return [tuple(r) for r in await self.session.execute(stmt)]

    async def authority(self, start: date, end: date, outlets: list[str] | None, *, by_day: bool) -> list[tuple]:
        """(day if ``by_day``, outcome, count, ms_sum, *buckets in BUCKETS order)."""
        columns = (A.day, A.outcome) if by_day else (A.outcome,)
        stmt = (select(*columns, func.sum(A.count), func.sum(A.ms_sum),
                       *(func.sum(A.__table__.c[name]) for name, _ in BUCKETS))
                .where(A.day >= start, A.day <= end))
        if outlets is not None:
            stmt = stmt.where(A.outlet_id.in_(outlets))
        return [tuple(r) for r in await self.session.execute(stmt.group_by(*columns))]

    async def pending_now(self, outlets: list[str]) -> int:
        """Invoices waiting for the authority now: an index range per outlet (tenant, outlet, status), the
        backlog's size, never the invoices'."""
        if not outlets:
            return 0
        stmt = select(func.count()).select_from(InvoiceSync).where(
            InvoiceSync.outlet_id.in_(outlets), InvoiceSync.status == literal_column("'pending'"))
        return int((await self.session.execute(stmt)).scalar_one())

    async def outlets(self) -> list[Outlet]:
        return list((await self.session.execute(select(Outlet).order_by(Outlet.code))).scalars())

    async def log_size(self) -> int:
        """The tenant's Merkle log size: it grows with every seal, so it versions every sum sealing keeps."""
        return int((await self.session.execute(select(MerkleLog.size))).scalar_one_or_none() or 0)

    async def invoices(self, ids: list[str]) -> list[Invoice]:
        if not ids:
            return []
        return list((await self.session.execute(select(Invoice).where(Invoice.id.in_(sorted(set(ids))))))
                    .scalars())

    # --- the rebuild (rebuild.py): every row of the tenant, compared and replaced -------------------------

    async def rows(self, model: Any) -> list[dict[str, Any]]:
        """Every row of the bound tenant in ``model``'s table, as dicts."""
        return [{c.name: getattr(r, c.name) for c in model.__table__.columns}
                for r in (await self.session.execute(select(model))).scalars()]

    async def replace(self, model: Any, tenant_id: str, rows: list[dict[str, Any]]) -> None:
        await self.session.execute(delete(model).where(model.tenant_id == tenant_id))
        for i in range(0, len(rows), 1000):
            await self.session.execute(insert(model.__table__), rows[i:i + 1000])

    async def settled(self, after: str, limit: int) -> list[tuple]:
        """(invoice, outlet, status, sealed_at, updated_at) of settled sync rows, by invoice id after ``after``."""
        stmt = (select(InvoiceSync.invoice_id, InvoiceSync.outlet_id, InvoiceSync.status, InvoiceSync.sealed_at,
                       InvoiceSync.updated_at)
                .where(InvoiceSync.invoice_id > after, InvoiceSync.status != literal_column("'pending'"))
                .order_by(InvoiceSync.invoice_id).limit(limit))
        return [tuple(r) for r in await self.session.execute(stmt)]
