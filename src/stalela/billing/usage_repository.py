"""All SQL of usage: events, voids, daily aggregates, the aggregation cursor, and what metering reads.

Sessions are bound to a tenant (the filter is added for us) except where a method says platform."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any, AsyncIterator, Iterable

from sqlalchemy import LargeBinary, and_, cast, func, literal, select, union_all
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.billing.usage_models import UsageCursor, UsageDaily, UsageEvent, UsageVoid
from stalela.db.repository import check_cursor
from stalela.fiscal.invoices.models import Invoice
from stalela.fiscal.ledger.models import ExportJob
from stalela.kit.pagination import page_of
from stalela.tenancy.models import Tenant

# Rows per multi-row INSERT: well under both databases' limit of bound parameters (10 columns each).
_CHUNK = 1000


class UsageRepository:
    """``tenant_id`` is filtered explicitly too (besides the session's binding): the billing cycle calls
    the read API from platform-bound sessions, where neither the ORM filter nor row-level security would."""

    def __init__(self, session: AsyncSession, tenant_id: str | None = None) -> None:
        self.session = session
        self.tenant_id = tenant_id
        self.dialect = session.bind.dialect.name

    def _mine(self, stmt: Any, *models: Any) -> Any:
        if self.tenant_id is None:
            raise RuntimeError("this read needs the repository's tenant")
        return stmt.where(*(m.tenant_id == self.tenant_id for m in models))

    def _insert(self, model: Any) -> Any:
        return (pg_insert if self.dialect == "postgresql" else sqlite_insert)(model)

    def _day(self, column: Any) -> Any:
        """The UTC day of a timestamp column, as YYYY-MM-DD text (SQLite stores UTC text already)."""
        if self.dialect == "postgresql":
            return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
        return func.substr(column, 1, 10)

    def _ordered(self, column: Any) -> Any:
        # Byte order, so that the database sorts ids the way the digest rule does (usage_math).
        return column.collate("C") if self.dialect == "postgresql" else column

    # --- events and voids -------------------------------------------------------------------------

    async def insert_new(self, rows: list[dict[str, Any]]) -> set[str]:
        """Insert events, skipping ids the tenant already has; returns the event ids inserted (the unique
        index decides, in this transaction, whoever races us).

        One statement with the rows as parameters (an executemany), not ``.values(rows)``: SQLAlchemy
        then compiles the one-row statement once, caches it, and sends the rows in multi-row batches
        ("insertmanyvalues"); building a 1,000-row VALUES clause per call costs ~0.3 s of compilation."""
        if not rows:
            return set()
        stmt = (self._insert(UsageEvent).on_conflict_do_nothing(index_elements=["tenant_id", "event_id"])
                .returning(UsageEvent.event_id))
        return set((await self.session.execute(stmt, rows)).scalars())

    async def by_event_ids(self, event_ids: Iterable[str]) -> dict[str, UsageEvent]:
        ids = list(set(event_ids))
        found: dict[str, UsageEvent] = {}
        for i in range(0, len(ids), _CHUNK):
            stmt = self._mine(select(UsageEvent).where(UsageEvent.event_id.in_(ids[i:i + _CHUNK])), UsageEvent)
            found.update((e.event_id, e) for e in (await self.session.execute(stmt)).scalars())
        return found

    async def insert_void(self, row: dict[str, Any]) -> bool:
        stmt = (self._insert(UsageVoid).values(row).on_conflict_do_nothing(index_elements=["tenant_id", "event_id"])
                .returning(UsageVoid.event_id))
        return (await self.session.execute(stmt)).scalar_one_or_none() is not None

    async def void_of(self, event_id: str) -> UsageVoid | None:
        stmt = self._mine(select(UsageVoid).where(UsageVoid.event_id == event_id), UsageVoid)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def page(self, resource: str | None, since: datetime | None, until: datetime | None, limit: int,
                   starting_after: str | None) -> tuple[list[tuple[UsageEvent, datetime | None]], bool]:
        """Newest first by id (time-ordered), each with when it was voided (or None)."""
        stmt = (select(UsageEvent, UsageVoid.voided_at)
                .outerjoin(UsageVoid, and_(UsageVoid.tenant_id == UsageEvent.tenant_id,
                                           UsageVoid.event_id == UsageEvent.event_id)))
        stmt = self._mine(stmt, UsageEvent)
        if resource:
            stmt = stmt.where(UsageEvent.resource == resource)
        if since:
            stmt = stmt.where(UsageEvent.occurred_at >= since)
        if until:
            stmt = stmt.where(UsageEvent.occurred_at < until)
        if starting_after:
            await check_cursor(self.session, self._mine(select(UsageEvent), UsageEvent), UsageEvent.id, starting_after)
            stmt = stmt.where(UsageEvent.id < starting_after)
        return page_of([(e, v) for e, v in await self.session.execute(
            stmt.order_by(UsageEvent.id.desc()).limit(limit + 1))], limit)

    # --- what the aggregation reads ---------------------------------------------------------------

    async def written_since(self, since: datetime | None, resource: str | None = None) -> set[tuple[str, date]]:
        """(resource, UTC day) of every event received and every void written at or after ``since``
        (of one resource, if given)."""
        day_e, day_v = self._day(UsageEvent.occurred_at), self._day(UsageVoid.occurred_at)
        events = select(UsageEvent.resource, day_e.label("day")).group_by(UsageEvent.resource, day_e)
        voids = select(UsageVoid.resource, day_v.label("day")).group_by(UsageVoid.resource, day_v)
        events, voids = self._mine(events, UsageEvent), self._mine(voids, UsageVoid)
        if resource is not None:
            events, voids = events.where(UsageEvent.resource == resource), voids.where(UsageVoid.resource == resource)
        if since is not None:
            events = events.where(UsageEvent.received_at >= since)
            voids = voids.where(UsageVoid.voided_at >= since)
        out: set[tuple[str, date]] = set()
        for stmt in (events, voids):
            out.update((r, date.fromisoformat(d)) for r, d in await self.session.execute(stmt))
        return out

    async def counter_rows(self, resource: str, start: datetime, end: datetime) -> list[tuple[str, int, datetime]]:
        """(id as covered by the digest, signed units, occurred_at) of the events and voids in [start, end)."""
        events = self._mine(select(UsageEvent.event_id, UsageEvent.quantity_units, UsageEvent.occurred_at).where(
            UsageEvent.resource == resource, UsageEvent.occurred_at >= start, UsageEvent.occurred_at < end), UsageEvent)
        voids = self._mine(select(literal("void:") + UsageVoid.event_id, UsageVoid.quantity_units,
                                  UsageVoid.occurred_at).where(
            UsageVoid.resource == resource, UsageVoid.occurred_at >= start, UsageVoid.occurred_at < end), UsageVoid)
        rows: list[tuple[str, int, datetime]] = []
        for stmt in (events, voids):
            rows.extend((i, u, at) for i, u, at in await self.session.execute(stmt))
        return rows

    def _signed_rows(self, resource: str, start: datetime, end: datetime) -> Any:
        """The events and voids of [start, end) as (day, id as the digest covers it, signed units)."""
        return union_all(
            self._mine(select(self._day(UsageEvent.occurred_at).label("day"), UsageEvent.event_id.label("id"),
                              UsageEvent.quantity_units.label("units"))
                       .where(UsageEvent.resource == resource, UsageEvent.occurred_at >= start,
                              UsageEvent.occurred_at < end), UsageEvent),
            self._mine(select(self._day(UsageVoid.occurred_at).label("day"), (literal("void:") + UsageVoid.event_id).label("id"),
                              UsageVoid.quantity_units.label("units"))
                       .where(UsageVoid.resource == resource, UsageVoid.occurred_at >= start,
                              UsageVoid.occurred_at < end), UsageVoid),
        ).subquery()

    async def counter_sums(self, resource: str, start: datetime, end: datetime) -> list[tuple[date, int, int]]:
        """(UTC day, signed units, events and voids counted) per day of [start, end): the sums alone, in SQL,
        for reads that show no digest (a big tenant's day holds millions of ids)."""
        rows = self._signed_rows(resource, start, end)
        if self.dialect != "postgresql":
            # SQLite's sum() of 64-bit integers raises on overflow (PostgreSQL's returns a numeric):
            # Python's integers do not overflow, and an embedded database's days are small.
            sums: dict[str, list[int]] = {}
            for day, units in await self.session.execute(select(rows.c.day, rows.c.units)):
                entry = sums.setdefault(day, [0, 0])
                entry[0] += units
                entry[1] += 1
            return [(date.fromisoformat(d), u, n) for d, (u, n) in sorted(sums.items())]
        stmt = select(rows.c.day, func.sum(rows.c.units), func.count()).group_by(rows.c.day).order_by(rows.c.day)
        return [(date.fromisoformat(d), int(u), int(n)) for d, u, n in await self.session.execute(stmt)]

    async def counter_digests(self, resource: str, start: datetime, end: datetime) -> list[tuple[date, int, int, str]]:
        """PostgreSQL only: ``counter_sums`` plus each day's digest, computed by the database exactly as
        ``usage_math.Digest`` does (SHA-256 of the ids sorted bytewise, each followed by a line feed), so
        that millions of ids never travel to Python (10 M events: minutes of row decoding otherwise)."""
        rows = self._signed_rows(resource, start, end)
        ids = func.string_agg(rows.c.id + literal("\n"), aggregate_order_by(literal(""), rows.c.id.collate("C")))
        digest = func.encode(func.sha256(func.convert_to(ids, "UTF8")), "hex")
        stmt = (select(rows.c.day, func.sum(rows.c.units), func.count(), digest)
                .group_by(rows.c.day).order_by(rows.c.day))
        return [(date.fromisoformat(d), int(u), int(n), h) for d, u, n, h in await self.session.execute(stmt)]

    async def gauge_samples(self, resource: str, start: datetime,
                            end: datetime) -> tuple[tuple[str, int] | None, list[tuple[str, int, datetime, bool]]]:
        """The last live sample before ``start`` (event id, units), and every sample in [start, end) as
        (event id, units, occurred_at, voided), in time order (ties: by event id)."""
        voided = UsageVoid.event_id.is_not(None)
        base = (select(UsageEvent.event_id, UsageEvent.quantity_units, UsageEvent.occurred_at, voided)
                .outerjoin(UsageVoid, and_(UsageVoid.tenant_id == UsageEvent.tenant_id,
                                           UsageVoid.event_id == UsageEvent.event_id))
                .where(UsageEvent.resource == resource))
        base = self._mine(base, UsageEvent)
        before = (base.where(UsageEvent.occurred_at < start, UsageVoid.event_id.is_(None))
                  .order_by(UsageEvent.occurred_at.desc(), self._ordered(UsageEvent.event_id).desc()).limit(1))
        carry = (await self.session.execute(before)).first()
        inside = (base.where(UsageEvent.occurred_at >= start, UsageEvent.occurred_at < end)
                  .order_by(UsageEvent.occurred_at, self._ordered(UsageEvent.event_id)))
        samples = [(i, u, at, bool(v)) for i, u, at, v in await self.session.execute(inside)]
        return ((carry[0], carry[1]) if carry else None), samples

    async def first_sample_day(self, resource: str) -> date | None:
        stmt = self._mine(select(func.min(self._day(UsageEvent.occurred_at))).where(UsageEvent.resource == resource),
                          UsageEvent)
        found = (await self.session.execute(stmt)).scalar_one_or_none()
        return date.fromisoformat(found) if found else None

    async def period_ids(self, resource: str, start: datetime, end: datetime) -> AsyncIterator[str]:
        """Every covered id (events, ``void:`` + voided ids) of [start, end), in byte order, streamed."""
        ids = union_all(
            self._mine(select(UsageEvent.event_id.label("i")).where(
                UsageEvent.resource == resource, UsageEvent.occurred_at >= start, UsageEvent.occurred_at < end),
                UsageEvent),
            self._mine(select((literal("void:") + UsageVoid.event_id).label("i")).where(
                UsageVoid.resource == resource, UsageVoid.occurred_at >= start, UsageVoid.occurred_at < end),
                UsageVoid),
        ).subquery()
        stmt = select(ids.c.i).order_by(self._ordered(ids.c.i))
        result = await self.session.stream(stmt.execution_options(yield_per=5000))
        async for (id_,) in result:
            yield id_

    # --- daily aggregates and the cursor ------------------------------------------------------------

    async def daily_rows(self, resource: str | None, start: date, end: date) -> list[UsageDaily]:
        stmt = self._mine(select(UsageDaily).where(UsageDaily.day >= start, UsageDaily.day < end), UsageDaily)
        if resource:
            stmt = stmt.where(UsageDaily.resource == resource)
        return list((await self.session.execute(stmt.order_by(UsageDaily.day, UsageDaily.resource))).scalars())

    async def last_daily_day(self, resource: str) -> date | None:
        stmt = self._mine(select(func.max(UsageDaily.day)).where(UsageDaily.resource == resource), UsageDaily)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def put_daily(self, rows: list[dict[str, Any]]) -> None:
        """One cached upsert with the rows as parameters (see ``insert_new``: no VALUES clause per call)."""
        if not rows:
            return
        stmt = self._insert(UsageDaily)
        stmt = stmt.on_conflict_do_update(
            index_elements=["tenant_id", "resource", "day"],
            set_={"quantity_units": stmt.excluded.quantity_units, "event_count": stmt.excluded.event_count,
                  "events_digest": stmt.excluded.events_digest})
        await self.session.execute(stmt, rows)

    async def cursor(self) -> datetime | None:
        stmt = self._mine(select(UsageCursor.aggregated_through), UsageCursor)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def set_cursor(self, through: datetime) -> None:
        stmt = self._insert(UsageCursor).values(tenant_id=self.tenant_id, aggregated_through=through)
        await self.session.execute(stmt.on_conflict_do_update(
            index_elements=["tenant_id"], set_={"aggregated_through": stmt.excluded.aggregated_through}))

    async def month_totals(self, start: date) -> list[tuple[str, str, int]]:
        """Platform scope: (tenant, resource, Σ daily units) from ``start`` on (the metric's figures)."""
        stmt = (select(UsageDaily.tenant_id, UsageDaily.resource, func.sum(UsageDaily.quantity_units))
                .where(UsageDaily.day >= start).group_by(UsageDaily.tenant_id, UsageDaily.resource))
        return [(t, r, int(q or 0)) for t, r, q in await self.session.execute(stmt)]

    # --- what metering reads --------------------------------------------------------------------------

    async def active_tenants(self) -> list[str]:
        """Platform scope: every tenant that is not deleted."""
        stmt = select(Tenant.id).where(Tenant.status != "deleted").order_by(Tenant.id)
        return list((await self.session.execute(stmt)).scalars())

    async def stored_bytes(self) -> int:
        """The tenant's stored bytes: its invoices' signed payloads, documents and sealed buyers,
        and its audit exports' files."""
        def size(column: Any) -> Any:
            # Bytes, not characters: SQLite's length() of text counts characters, of a blob bytes.
            if self.dialect == "postgresql":
                return func.coalesce(func.octet_length(column), 0)
            return func.coalesce(func.length(cast(column, LargeBinary)), 0)

        invoices = self._mine(select(func.coalesce(func.sum(
            size(Invoice.payload) + size(Invoice.document) + size(Invoice.buyer_sealed)), 0)), Invoice)
        exports = self._mine(select(func.coalesce(func.sum(ExportJob.bytes), 0)).where(ExportJob.status == "ready"),
                             ExportJob)
        return int((await self.session.execute(invoices)).scalar_one()) + \
            int((await self.session.execute(exports)).scalar_one())
