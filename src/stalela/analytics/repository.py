"""All SQL of analytics: sums over the additive rows sealing and the authority agent keep (never the invoices).

Sessions are bound to the caller's tenant: the tenancy helper adds ``tenant_id`` to every statement (and row
-level security enforces it on PostgreSQL). Every read is a few ranges of the rows' primary key
``(tenant_id, kind, period, ...)`` or ``(tenant_id, day, ...)``: month rows for the whole months of a range,
day rows around them, so its cost follows the months and days asked for and the outlets, types, tax groups
and buyers in them, never the number of invoices.
"""
from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import BigInteger, and_, cast, delete, func, insert, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.authority.models import AuthorityTally
from stalela.analytics.periods import split
from stalela.authority.outcomes import BUCKETS
from stalela.fiscal.invoices.models import BuyerTally, Invoice, InvoiceSync, SalesTally
from stalela.fiscal.ledger.models import MerkleLog
from stalela.tenancy.models import Outlet

S = SalesTally
B = BuyerTally
A = AuthorityTally


def _sum(column: Any) -> Any:
    # PostgreSQL sums a bigint as a numeric (a Decimal each in Python): cast back, a sum of cents fits.
    return cast(func.sum(column), BigInteger)


_SUMS = (_sum(S.count), _sum(S.credit_count), _sum(S.amount), _sum(S.credited), _sum(S.base), _sum(S.vat))
Kinds = tuple[str] | tuple[str, str]


def _where(kinds: Kinds, first: date, last: date) -> Any:
    """The rows of [first, last]: ``(kind,)`` its rows with a period in it; ``(day kind, month kind)`` the month
    rows of the whole months inside it and the day rows of the days around them (periods.split)."""
    if len(kinds) == 1:
        return and_(S.kind == kinds[0], S.period >= first, S.period <= last)
    days, months = split(first, last)
    spans = [and_(S.kind == kinds[0], S.period >= a, S.period <= b) for a, b in days]
    if months is not None:
        spans.append(and_(S.kind == kinds[1], S.period >= months[0], S.period <= months[1]))
    return or_(*spans) if len(spans) > 1 else spans[0]


class AnalyticsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _sums(self, kinds: Kinds, first: date, last: date, outlets: list[str] | None, *by: Any) -> list[tuple]:
        stmt = select(*by, *_SUMS).where(_where(kinds, first, last))
        if outlets is not None:
            stmt = stmt.where(S.outlet_id.in_(outlets))
        return [tuple(r) for r in await self.session.execute(stmt.group_by(*by))]

    async def per_period(self, kinds: Kinds, first: date, last: date, outlets: list[str] | None) -> list[tuple]:
        """(period, currency, count, credit_count, amount, credited, base, vat) per row period and currency."""
        return await self._sums(kinds, first, last, outlets, S.period, S.currency)

    async def per_key(self, kinds: Kinds, first: date, last: date, outlets: list[str] | None) -> list[tuple]:
        """(currency, key, count, credit_count, amount, credited, base, vat) per currency and key."""
        return await self._sums(kinds, first, last, outlets, S.currency, S.key)

    async def per_outlet(self, kinds: Kinds, first: date, last: date, outlets: list[str] | None) -> list[tuple]:
        """(outlet, currency, count, credit_count, amount, credited, base, vat) per outlet and currency."""
        return await self._sums(kinds, first, last, outlets, S.outlet_id, S.currency)

    async def top_buyers(self, pieces: list[tuple[str, date]], currency: str, limit: int) -> list[tuple]:
        """The ``limit`` buyers with the largest net amount in ``currency`` over ``pieces`` (whole years,
        quarters and months: periods.month_pieces): (subject, amount, count, credit_count, latest invoice),
        largest first (ties by subject). One pass over a few ranges of the key ``(tenant, currency, grain,
        period)``: a year is one row per buyer."""
        grains: dict[str, list[date]] = {}
        for grain, period in pieces:
            grains.setdefault(grain, []).append(period)
        amount = _sum(B.amount)
        stmt = (select(B.subject_id, amount, _sum(B.count), _sum(B.credit_count), func.max(B.ref))
                .where(B.currency == currency,
                       or_(*(and_(B.grain == g, B.period.in_(periods)) for g, periods in sorted(grains.items()))))
                .group_by(B.subject_id).order_by(amount.desc(), B.subject_id).limit(limit))
        return [tuple(r) for r in await self.session.execute(stmt)]

    async def authority(self, first: date, last: date, outlets: list[str] | None) -> list[tuple]:
        """(day, outcome, count, ms_sum, *buckets in BUCKETS order) per day and outcome."""
        stmt = (select(A.day, A.outcome, _sum(A.count), _sum(A.ms_sum), *(_sum(A.__table__.c[name]) for name, _ in BUCKETS))
                .where(A.day >= first, A.day <= last))
        if outlets is not None:
            stmt = stmt.where(A.outlet_id.in_(outlets))
        return [tuple(r) for r in await self.session.execute(stmt.group_by(A.day, A.outcome))]

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
