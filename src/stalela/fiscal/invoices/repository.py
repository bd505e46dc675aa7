from __future__ import annotations

from datetime import date
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, func, insert, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY, insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from stalela.db.base import UTCDateTime, utcnow
from stalela.db.repository import Repository
from stalela.fiscal.invoices.models import (AuthorityAck, BuyerTally, DayFigures, IdempotencyRecord, Invoice,
                                           InvoiceSync, NumberBlock, SalesTally, Series)
from stalela.fiscal.invoices.schemas import InvoiceFilters
from stalela.kit.ids import new_id
from stalela.tenancy.models import Outlet


# Statements every seal group runs, built once (see db.repository._by_id).
# The series of these outlets and codes, locked in one order for everyone (see lock_series).
_LOCK_SERIES = (select(Series).where(Series.outlet_id.in_(bindparam("outlets", expanding=True)),
                                     Series.code.in_(bindparam("codes", expanding=True)))
                .order_by(Series.outlet_id, Series.code).with_for_update().execution_options(populate_existing=True))
# The most recent business day of each of these outlets.
_NEWEST_DAYS = (select(DayFigures.outlet_id, func.max(DayFigures.business_day))
                .where(DayFigures.outlet_id.in_(bindparam("outlet_ids", expanding=True))).group_by(DayFigures.outlet_id))
_LATEST_DAYS = select(DayFigures).where(tuple_(DayFigures.outlet_id, DayFigures.business_day).in_(_NEWEST_DAYS))


class InvoiceRepository(Repository[Invoice]):
    model = Invoice

    async def insert_sealed(self, invoices: list[dict], idempotency: list[dict]) -> None:
        """A group's sealed invoices and their idempotency records, in a few multi-row INSERTs (Core:
        the ORM's unit of work cost more per invoice than all the rest of the seal)."""
        await _insert(self.session, Invoice.__table__, invoices)
        await _insert(self.session, IdempotencyRecord.__table__, idempotency)

    async def many(self, ids: list[str]) -> list[Invoice]:
        if not ids:
            return []
        return list((await self.session.execute(select(Invoice).where(Invoice.id.in_(sorted(set(ids)))))).scalars())

    async def by_subject(self, subject_id: str) -> list[str]:
        stmt = select(Invoice.id).where(Invoice.buyer_subject == subject_id).order_by(Invoice.id)
        return list((await self.session.execute(stmt)).scalars())

    async def by_fiscal_number(self, fiscal_number: str) -> Invoice | None:
        stmt = select(Invoice).where(Invoice.fiscal_number == fiscal_number)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def credited_cents(self, original: str, credit_types: frozenset[str], *,
                             skip_refused: bool = False) -> int:
        """What the credit notes citing ``original`` add up to (debit notes cite originals too: not counted).

        ``skip_refused``: leave out notes the authority refused (Argentina: a note ARCA rejected never
        took effect, and the merchant issues it again)."""
        stmt = select(func.coalesce(func.sum(Invoice.total_cents), 0)).where(
            Invoice.original == original, Invoice.type.in_(sorted(credit_types)))
        if skip_refused:
            refused = select(InvoiceSync.invoice_id).where(InvoiceSync.status.in_(("rejected", "failed")))
            stmt = stmt.where(Invoice.id.not_in(refused))
        return int((await self.session.execute(stmt)).scalar_one())

    async def references_taken(self, wanted: set[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (outlet_id, reference) pairs are already sealed."""
        if not wanted:
            return set()
        stmt = select(Invoice.outlet_id, Invoice.reference).where(
            tuple_(Invoice.outlet_id, Invoice.reference).in_(sorted(wanted)))
        return {(o, r) for o, r in await self.session.execute(stmt)}

    async def search(
        self, filters: InvoiceFilters, *, outlets_only: frozenset[str] | None, limit: int, starting_after: str | None
    ) -> tuple[list[Invoice], bool]:
        stmt = select(Invoice)
        if outlets_only is not None:
            stmt = stmt.where(Invoice.outlet_id.in_(sorted(outlets_only)))
        if filters.outlet_id:
            stmt = stmt.where(Invoice.outlet_id == filters.outlet_id)
        if filters.type:
            stmt = stmt.where(Invoice.type == filters.type)
        if filters.fiscal_number:
            stmt = stmt.where(Invoice.fiscal_number == filters.fiscal_number)
        if filters.issued_at_gte:
            stmt = stmt.where(Invoice.issued_at >= filters.issued_at_gte)
        if filters.issued_at_lt:
            stmt = stmt.where(Invoice.issued_at < filters.issued_at_lt)
        return await self.page(stmt, limit=limit, starting_after=starting_after)


async def _insert(session, table, rows: list[dict]) -> None:  # noqa: ANN001
    if rows:
        await session.execute(insert(table), rows)


class SeriesRepository(Repository[Series]):
    model = Series

    async def lock_for_outlet(self, tenant_id: str, outlet_id: str, code: str = "main") -> Series:
        """The outlet's series row, created on first use, locked until the transaction ends.

        This row lock is what makes numbering gap-free under concurrency: every sealer of the outlet
        queues here, takes counter + 1 and the chain head, and releases at commit or rollback.
        """
        return (await self.lock_for_outlets(tenant_id, [outlet_id], code))[outlet_id]


    async def lock_for_outlets(self, tenant_id: str, outlet_ids: list[str], code: str = "main") -> dict[str, Series]:
        """``lock_for_outlet`` for many outlets, keyed by outlet id."""
        found = await self.lock_series(tenant_id, [(o, code) for o in outlet_ids])
        return {outlet_id: series for (outlet_id, _), series in found.items()}

    async def lock_series(self, tenant_id: str, wanted: list[tuple[str, str]]) -> dict[tuple[str, str], Series]:
        """The series (outlet id, code) in two statements (three the first time), created on first use and
        locked in (outlet id, code) order: a group commit touches many series, and one round trip each
        would cost more than the seals themselves."""
        if not wanted:
            return {}
        pairs = sorted(set(wanted))
        outlets, codes = sorted({o for o, _ in pairs}), sorted({c for _, c in pairs})
        # Rows of other (outlet, code) combinations in the rectangle are locked too; there are few (one
        # series per receipt type), and a superset keeps one statement and the same order for everyone.
        params = {"outlets": outlets, "codes": codes}
        found = {(s.outlet_id, s.code): s for s in (await self.session.execute(_LOCK_SERIES, params)).scalars()}
        missing = [p for p in pairs if p not in found]
        if missing:
            insert = pg_insert if self.session.bind.dialect.name == "postgresql" else sqlite_insert
            await self.session.execute(insert(Series).values([
                {"tenant_id": tenant_id, "id": new_id("ser"), "outlet_id": o, "code": c, "counter": 0,
                 "first_counter": 1, "generation": 1, "last_hash": "0" * 64} for o, c in missing
            ]).on_conflict_do_nothing(index_elements=["tenant_id", "outlet_id", "code"]))
            found = {(s.outlet_id, s.code): s for s in (await self.session.execute(_LOCK_SERIES, params)).scalars()}
        return {p: found[p] for p in pairs}

    async def align(self, tenant_id: str, outlet_id: str, code: str, last: int) -> Series | None:
        """Start a series that has numbered nothing yet after ``last`` (the authority's last number of it).

        Returns the series, or None when it has already numbered something: a series in use is never
        renumbered (its numbers are sealed).
        """
        series = (await self.lock_series(tenant_id, [(outlet_id, code)]))[(outlet_id, code)]
        if series.counter != series.first_counter - 1:
            return None
        series.counter, series.first_counter, series.updated_at = last, last + 1, utcnow()
        await self.session.flush()
        return series

    async def supersede(self, tenant_id: str, outlet_id: str, code: str, last: int) -> tuple[Series, Series]:
        """Continue the series ``code`` of an outlet after ``last`` in a new generation; returns (old, new).

        The old row keeps its sealed numbers (and chain) under the archived code ``{code}@{generation}``;
        the new row takes ``code``, so sealing finds it, and starts a chain of its own at ``last + 1``.
        The caller holds the tenant's log lock (the order every sealer takes locks in)."""
        old = (await self.lock_series(tenant_id, [(outlet_id, code)]))[(outlet_id, code)]
        now = utcnow()
        old.code, old.updated_at = f"{code}@{old.generation}", now
        await self.session.flush()
        new = Series(tenant_id=tenant_id, id=new_id("ser"), outlet_id=outlet_id, code=code, counter=last,
                     first_counter=last + 1, generation=old.generation + 1, last_hash="0" * 64, updated_at=now)
        self.session.add(new)
        await self.session.flush()
        return old, new

    async def current(self, outlet_id: str, code: str) -> Series | None:
        stmt = select(Series).where(Series.outlet_id == outlet_id, Series.code == code)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def used(self) -> list[Series]:
        """The tenant's series that have numbered at least one invoice."""
        stmt = select(Series).where(Series.counter >= Series.first_counter)
        return list((await self.session.execute(stmt)).scalars())

    async def last_counters(self) -> list[tuple[str, str, int]]:
        """(tenant, outlet, the last counter handed out), platform-wide."""
        stmt = select(Series.tenant_id, Series.outlet_id, func.max(Series.counter)).group_by(Series.tenant_id,
                                                                                             Series.outlet_id)
        return [tuple(row) for row in await self.session.execute(stmt)]


class IdempotencyRepository(Repository[IdempotencyRecord]):
    model = IdempotencyRecord

    async def delete(self, record: IdempotencyRecord) -> None:
        await self.session.delete(record)
        await self.session.flush()

    async def find_many(self, keys: list[str]) -> dict[str, IdempotencyRecord]:
        stmt = select(IdempotencyRecord).where(IdempotencyRecord.key.in_(sorted(set(keys))))
        return {r.key: r for r in (await self.session.execute(stmt)).scalars()}


class SyncStateRepository:
    """The invoices' authority sync state as sealing writes it and the invoice API reads it (the agent
    in stalela.authority moves it on)."""

    def __init__(self, session) -> None:  # noqa: ANN001
        self.session = session

    async def insert_pending(self, rows: list[dict]) -> None:
        """New invoices' sync rows, many at once (a Core executemany: the ORM costs more than the rows)."""
        if rows:
            await self.session.execute(insert(InvoiceSync.__table__), rows)

    async def views(self, invoice_ids: list[str]) -> dict[str, tuple[InvoiceSync, AuthorityAck | None]]:
        if not invoice_ids:
            return {}
        stmt = (select(InvoiceSync, AuthorityAck)
                .outerjoin(AuthorityAck, (AuthorityAck.tenant_id == InvoiceSync.tenant_id)
                           & (AuthorityAck.invoice_id == InvoiceSync.invoice_id))
                .where(InvoiceSync.invoice_id.in_(invoice_ids)))
        return {s.invoice_id: (s, a) for s, a in await self.session.execute(stmt)}


class DayFiguresRepository:
    def __init__(self, session) -> None:  # noqa: ANN001
        self.session = session

    async def latest(self, outlet_id: str) -> DayFigures | None:
        """The outlet's most recent business day with figures (open or closed)."""
        stmt = (select(DayFigures).where(DayFigures.outlet_id == outlet_id)
                .order_by(DayFigures.business_day.desc()).limit(1))
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def latest_many(self, outlet_ids: list[str]) -> dict[str, DayFigures]:
        """``latest`` for many outlets in one statement."""
        rows = (await self.session.execute(_LATEST_DAYS, {"outlet_ids": outlet_ids})).scalars()
        return {row.outlet_id: row for row in rows}

    async def get(self, outlet_id: str, day: date) -> DayFigures | None:
        stmt = select(DayFigures).where(DayFigures.outlet_id == outlet_id, DayFigures.business_day == day)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def for_outlet(self, outlet_id: str) -> list[DayFigures]:
        stmt = select(DayFigures).where(DayFigures.outlet_id == outlet_id).order_by(DayFigures.business_day)
        return list((await self.session.execute(stmt)).scalars())

    async def open_days(
        self, outlet_id: str, *, before: date | None = None, up_to: date | None = None
    ) -> list[DayFigures]:
        stmt = select(DayFigures).where(DayFigures.outlet_id == outlet_id, DayFigures.z_report_id.is_(None))
        if before is not None:
            stmt = stmt.where(DayFigures.business_day < before)
        if up_to is not None:
            stmt = stmt.where(DayFigures.business_day <= up_to)
        return list((await self.session.execute(stmt.order_by(DayFigures.business_day))).scalars())

    async def all_open(self, up_to: date) -> list[tuple[str, str, date, str]]:
        """Across tenants (platform session): (tenant, outlet, day, outlet timezone) of open days."""
        stmt = (
            select(DayFigures.tenant_id, DayFigures.outlet_id, DayFigures.business_day, Outlet.timezone)
            .join(Outlet, (Outlet.tenant_id == DayFigures.tenant_id) & (Outlet.id == DayFigures.outlet_id))
            .where(DayFigures.z_report_id.is_(None), DayFigures.business_day <= up_to)
            .order_by(DayFigures.business_day)
        )
        return [tuple(r) for r in await self.session.execute(stmt)]


_TALLY_SUMS = ("count", "credit_count", "amount", "credited", "base", "vat")
_TALLIES = {  # model -> (its key, the columns added to, columns set otherwise)
    SalesTally: (("tenant_id", "kind", "period", "outlet_id", "currency", "key"), _TALLY_SUMS, ()),
    BuyerTally: (("tenant_id", "currency", "grain", "period", "subject_id"), _TALLY_SUMS[:4], ("ref",)),
}


def _set(model: Any, stmt: Any) -> dict[str, Any]:
    """What an upsert of ``model``'s tallies does to an existing row: add the sums, keep the latest ref."""
    table, (_, sums, kept) = model.__table__, _TALLIES[model]
    return {**{c: table.c[c] + stmt.excluded[c] for c in sums}, "updated_at": stmt.excluded.updated_at,
            **{c: func.coalesce(stmt.excluded[c], table.c[c]) for c in kept}}


@lru_cache(maxsize=None)
def _unnest_upsert(model: Any) -> Any:
    """PostgreSQL: every row of a transaction's tallies in ONE statement, whatever their number: each column
    an array, unnested (one round trip, and a statement prepared once; an executemany costs a round trip per
    row through the driver here)."""
    table, (key, _, _) = model.__table__, _TALLIES[model]
    columns = [c for c in table.columns if c.name != "updated_at"]
    rows = func.unnest(*(bindparam(c.name, type_=ARRAY(c.type)) for c in columns)) \
        .table_valued(*(c.name for c in columns)).render_derived(name="t")
    source = select(*(rows.c[c.name] for c in columns), bindparam("updated_at", type_=UTCDateTime()))
    stmt = pg_insert(table).from_select([*(c.name for c in columns), "updated_at"], source)
    return stmt.on_conflict_do_update(index_elements=list(key), set_=_set(model, stmt))


class SalesTallyRepository:
    def __init__(self, session) -> None:  # noqa: ANN001
        self.session = session

    async def _add(self, model: Any, rows: list[dict[str, Any]]) -> None:
        if self.session.bind.dialect.name == "postgresql":
            params = {c.name: [r[c.name] for r in rows] for c in model.__table__.columns if c.name != "updated_at"}
            await self.session.execute(_unnest_upsert(model), {**params, "updated_at": rows[0]["updated_at"]})
            return
        stmt = sqlite_insert(model.__table__)
        stmt = stmt.on_conflict_do_update(index_elements=list(_TALLIES[model][0]), set_=_set(model, stmt))
        await self.session.execute(stmt, rows)

    async def add(self, rows: list[dict[str, Any]]) -> None:
        """Add ``rows`` to the analytics sums (tallies.py; every row has the same ``updated_at``)."""
        await self._add(SalesTally, rows)

    async def add_buyers(self, rows: list[dict[str, Any]]) -> None:
        await self._add(BuyerTally, rows)


class NumberBlockRepository(Repository[NumberBlock]):
    model = NumberBlock

    async def due_for_void(self, before: Any, limit: int = 100) -> list[NumberBlock]:
        """Open blocks whose credential expired before ``before`` (expiry plus grace): across tenants for
        the void scheduler, which runs with the platform flag like the other schedulers."""
        stmt = (select(NumberBlock).where(NumberBlock.status == "open", NumberBlock.expires_at < before)
                .order_by(NumberBlock.expires_at).limit(limit))
        return list((await self.session.execute(stmt)).scalars())
