from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import case, func, literal_column, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from stalela.authority.models import AuthorityDevice, AuthorityTally
from stalela.fiscal.invoices.models import AuthorityAck, Invoice, InvoiceSync


class AuthorityRepository:
    def __init__(self, session) -> None:  # noqa: ANN001
        self.session = session

    def _insert(self):  # noqa: ANN202
        return pg_insert if self.session.bind.dialect.name == "postgresql" else sqlite_insert

    async def device(self, outlet_id: str) -> AuthorityDevice | None:
        stmt = select(AuthorityDevice).where(AuthorityDevice.outlet_id == outlet_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def sync_row(self, invoice_id: str, *, lock: bool = False) -> InvoiceSync | None:
        stmt = select(InvoiceSync).where(InvoiceSync.invoice_id == invoice_id)
        if lock:
            stmt = stmt.with_for_update().execution_options(populate_existing=True)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def ensure_sync_row(self, tenant_id: str, invoice_id: str, outlet_id: str, sealed_at: datetime) -> None:
        await self.session.execute(
            self._insert()(InvoiceSync)
            .values(tenant_id=tenant_id, invoice_id=invoice_id, outlet_id=outlet_id, status="pending", attempts=0,
                    sealed_at=sealed_at, updated_at=sealed_at)
            .on_conflict_do_nothing(index_elements=["tenant_id", "invoice_id"]))

    async def ack(self, invoice_id: str) -> AuthorityAck | None:
        stmt = select(AuthorityAck).where(AuthorityAck.invoice_id == invoice_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def waiting_invoices(self, outlet_id: str) -> list[str]:
        stmt = select(InvoiceSync.invoice_id).where(InvoiceSync.outlet_id == outlet_id,
                                                    InvoiceSync.status == "pending")
        return list((await self.session.execute(stmt)).scalars())

    async def all_waiting_invoices(self) -> list[str]:
        """Every invoice of the tenant still pending, oldest number first per series (ARCA's order)."""
        stmt = (select(InvoiceSync.invoice_id).join(Invoice, (Invoice.tenant_id == InvoiceSync.tenant_id)
                                                    & (Invoice.id == InvoiceSync.invoice_id))
                .where(InvoiceSync.status == "pending").order_by(Invoice.series_id, Invoice.counter))
        return list((await self.session.execute(stmt)).scalars())

    async def series_neighbour(self, series_id: str, counter: int, *,
                               lock: bool = False) -> tuple[str, InvoiceSync] | None:
        """(invoice id, sync row, locked if asked) of number ``counter`` of a series, if sealed."""
        stmt = (select(Invoice.id, InvoiceSync).join(InvoiceSync, (InvoiceSync.tenant_id == Invoice.tenant_id)
                                                     & (InvoiceSync.invoice_id == Invoice.id))
                .where(Invoice.series_id == series_id, Invoice.counter == counter))
        if lock:
            stmt = stmt.with_for_update(of=InvoiceSync).execution_options(populate_existing=True)
        row = (await self.session.execute(stmt)).first()
        return (row[0], row[1]) if row else None

    async def series_run(self, series_id: str, after: int, limit: int) -> list[tuple[str, InvoiceSync, dict]]:
        """(invoice id, sync row locked, signed payload) of the ``limit`` numbers after ``after`` of a series."""
        if limit <= 0:
            return []
        stmt = (select(Invoice.id, InvoiceSync, Invoice.payload)
                .join(InvoiceSync, (InvoiceSync.tenant_id == Invoice.tenant_id) & (InvoiceSync.invoice_id == Invoice.id))
                .where(Invoice.series_id == series_id, Invoice.counter > after, Invoice.counter <= after + limit)
                .order_by(Invoice.counter).with_for_update(of=InvoiceSync))
        return [(invoice_id, row, json.loads(payload)) for invoice_id, row, payload in await self.session.execute(stmt)]

    async def series_standing(self, series_id: str) -> tuple[int | None, int | None]:
        """(the series' highest acknowledged number, its lowest refused number above that one)."""
        numbered = (select(Invoice.counter).join(InvoiceSync, (InvoiceSync.tenant_id == Invoice.tenant_id)
                                                 & (InvoiceSync.invoice_id == Invoice.id))
                    .where(Invoice.series_id == series_id))
        acknowledged = (await self.session.execute(
            numbered.with_only_columns(func.max(Invoice.counter)).where(InvoiceSync.status == "acknowledged")
        )).scalar_one()
        refused = numbered.with_only_columns(func.min(Invoice.counter)).where(
            InvoiceSync.status.in_(("rejected", "failed")))
        if acknowledged is not None:
            refused = refused.where(Invoice.counter > acknowledged)
        return acknowledged, (await self.session.execute(refused)).scalar_one()

    async def pending_in_series(self, series_id: str, above: int) -> list[tuple[str, InvoiceSync]]:
        """(invoice id, sync row, locked) of a series' invoices numbered above ``above`` still pending."""
        stmt = (select(Invoice.id, InvoiceSync).join(InvoiceSync, (InvoiceSync.tenant_id == Invoice.tenant_id)
                                                     & (InvoiceSync.invoice_id == Invoice.id))
                .where(Invoice.series_id == series_id, Invoice.counter > above, InvoiceSync.status == "pending")
                .order_by(Invoice.counter).with_for_update(of=InvoiceSync))
        return [(invoice_id, row) for invoice_id, row in await self.session.execute(stmt)]

    async def waiting_in_series(self, series_id: str, up_to: int) -> list[tuple[str, dict]]:
        """(invoice id, signed payload) of a series' pending invoices numbered up to ``up_to`` that were sent."""
        stmt = (select(Invoice.id, Invoice.payload).join(InvoiceSync, (InvoiceSync.tenant_id == Invoice.tenant_id)
                                                         & (InvoiceSync.invoice_id == Invoice.id))
                .where(Invoice.series_id == series_id, Invoice.counter <= up_to, InvoiceSync.status == "pending",
                       InvoiceSync.uid.is_not(None))  # sent at least once: only those can be ARCA's receipt
                .order_by(Invoice.counter))
        return [(invoice_id, json.loads(payload)) for invoice_id, payload in await self.session.execute(stmt)]

    async def update_pending(self, invoice_id: str, **values) -> bool:  # noqa: ANN003
        """Set values on the invoice's sync row only while it is pending; False if it no longer was."""
        result = await self.session.execute(
            update(InvoiceSync).where(InvoiceSync.invoice_id == invoice_id, InvoiceSync.status == "pending")
            .values(**values))
        return result.rowcount == 1

    async def settle_pending(self, invoice_id: str, **values) -> tuple[str, datetime] | None:  # noqa: ANN003
        """``update_pending`` that answers the row's (outlet, sealed_at) when it was pending (the outcome's
        analytics row needs them), None if it no longer was."""
        result = await self.session.execute(
            update(InvoiceSync).where(InvoiceSync.invoice_id == invoice_id, InvoiceSync.status == "pending")
            .values(**values).returning(InvoiceSync.outlet_id, InvoiceSync.sealed_at)
            .execution_options(synchronize_session=False))
        row = result.one_or_none()
        return (row[0], row[1]) if row is not None else None

    async def add_tallies(self, rows: list[dict]) -> None:
        """Add outcomes to the analytics sums (outcomes.py): one upsert that only adds."""
        table = AuthorityTally.__table__
        stmt = self._insert()(table)
        sums = [c.name for c in table.columns if c.name not in ("tenant_id", "day", "outlet_id", "outcome",
                                                                 "updated_at")]
        stmt = stmt.on_conflict_do_update(
            index_elements=["tenant_id", "day", "outlet_id", "outcome"],
            set_={**{c: table.c[c] + stmt.excluded[c] for c in sums}, "updated_at": stmt.excluded.updated_at})
        await self.session.execute(stmt, rows)

    async def mark_device(self, outlet_id: str, **values) -> None:  # noqa: ANN003
        await self.session.execute(update(AuthorityDevice).where(AuthorityDevice.outlet_id == outlet_id)
                                   .values(**values))

    async def backlog_by_status(self) -> list[tuple]:
        """(status, count, oldest sealed_at) of every invoice not yet acknowledged, platform-wide."""
        stmt = (select(InvoiceSync.status, func.count(), func.min(InvoiceSync.sealed_at))
                .where(InvoiceSync.status != "acknowledged").group_by(InvoiceSync.status))
        return [tuple(row) for row in await self.session.execute(stmt)]

    async def status_by_outlet(self) -> list[tuple]:
        stmt = (select(
            InvoiceSync.outlet_id,
            func.sum(case((InvoiceSync.status == "pending", 1), else_=0)),
            func.min(case((InvoiceSync.status == "pending", InvoiceSync.sealed_at), else_=None)),
            func.sum(case((InvoiceSync.status == "failed", 1), else_=0)),
            func.sum(case((InvoiceSync.status == "acknowledged", 1), else_=0)),
            func.max(case((InvoiceSync.status == "acknowledged", InvoiceSync.updated_at), else_=None)),
            func.sum(case((InvoiceSync.status == "rejected", 1), else_=0)),  # ARCA's Resultado R
        ).group_by(InvoiceSync.outlet_id))
        return list(await self.session.execute(stmt))

    # --- the device's pending slots (see service.DeviceSlots) ---------------------------------------

    async def claim_left_pending(self, outlet_id: str, but: str, now: datetime, until: datetime,
                                 limit: int) -> list[tuple[str, str]]:
        """Claim the outlet's invoices whose checked request (uid stored) nobody is finishing: (invoice, uid)."""
        return await self._claim(until, now, InvoiceSync.outlet_id == outlet_id, InvoiceSync.uid.is_not(None),
                                 InvoiceSync.invoice_id != but, limit=limit)

    async def claim_by_numbers(self, outlet_id: str, numbers: list[str], now: datetime,
                               until: datetime) -> dict[str, tuple[str, str | None] | None]:
        """The outlet's invoices with these fiscal numbers: number -> (invoice, checked uid) for the pending ones
        now claimed, None for those that are acknowledged or failed. Invoices someone else holds are absent."""
        if not numbers:
            return {}
        rows = (await self.session.execute(
            select(Invoice.fiscal_number, Invoice.id, InvoiceSync.status)
            .join(InvoiceSync, (InvoiceSync.tenant_id == Invoice.tenant_id) & (InvoiceSync.invoice_id == Invoice.id))
            .where(Invoice.outlet_id == outlet_id, Invoice.fiscal_number.in_(numbers)))).all()
        done = {number: None for number, _, status in rows if status != "pending"}
        wanted = [i for _, i, status in rows if status == "pending"]
        claimed = dict(await self._claim(until, now, InvoiceSync.invoice_id.in_(wanted))) if wanted else {}
        return done | {number: (i, claimed[i]) for number, i, _ in rows if i in claimed}

    async def _claim(self, until: datetime, now: datetime, *where, limit: int | None = None) -> list[tuple]:  # noqa: ANN002
        """Claim pending, unclaimed sync rows: (invoice, uid). Rows another transaction holds are skipped, not
        waited for: an agent claims these while holding its own invoice's row, so waiting could deadlock."""
        # 'pending' inline, not a parameter: a generic plan could not prove the partial index applies.
        free = (select(InvoiceSync.invoice_id)
                .where(*where, InvoiceSync.status == literal_column("'pending'"),
                       or_(InvoiceSync.claimed_until.is_(None), InvoiceSync.claimed_until <= now))
                .limit(limit).with_for_update(skip_locked=True))
        stmt = (update(InvoiceSync).where(InvoiceSync.invoice_id.in_(free.scalar_subquery()))
                .values(claimed_until=until).returning(InvoiceSync.invoice_id, InvoiceSync.uid)
                .execution_options(synchronize_session=False))
        return [tuple(row) for row in await self.session.execute(stmt)]

    async def release(self, invoice_ids: list[str]) -> None:
        await self.session.execute(update(InvoiceSync).where(InvoiceSync.invoice_id.in_(invoice_ids))
                                   .values(claimed_until=None).execution_options(synchronize_session=False))
