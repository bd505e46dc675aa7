"""All SQL of the monthly bills and of the platform's billing issuer."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from stalela.billing.bill_lines import period_bounds
from stalela.billing.bill_models import Bill, BillingIssuer, ExchangeRate
from stalela.auth.permissions import CLOSING
from stalela.db.repository import Repository
from stalela.fiscal.invoices.models import Invoice
from stalela.tenancy.models import Tenant

ISSUER_ROW = 1


def _insert(session) -> Any:  # noqa: ANN001
    """The dialect's INSERT, which knows ON CONFLICT."""
    return pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert


class BillRepository(Repository[Bill]):
    model = Bill

    async def insert_draft(self, values: dict[str, Any]) -> None:
        """Insert the (tenant, period) draft unless it exists: the unique index decides, so two runs (or a
        crashed run and its re-run) leave exactly one bill."""
        await self.session.execute(_insert(self.session)(Bill).values(**values)
                                   .on_conflict_do_nothing(index_elements=["tenant_id", "period"]))

    async def of_period(self, period: str, *, lock: bool = False) -> Bill | None:
        stmt = select(Bill).where(Bill.period == period)
        if lock:
            stmt = stmt.with_for_update().execution_options(populate_existing=True)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def closed_since(self, period: str) -> list[Bill]:
        """The tenant's closed bills (sealed or empty) from ``period`` on: what already billed for it."""
        stmt = select(Bill).where(Bill.period >= period, Bill.status != "draft").order_by(Bill.period)
        return list((await self.session.execute(stmt)).scalars())

    # --- platform-bound reads (the cycle, the operator) --------------------------------------------

    async def billed_tenants(self, issuer_tenant_id: str | None) -> list[str]:
        """Every tenant but the issuer that is not being provisioned, offboarded or deleted, in id order (the
        order the cycle visits them): a suspended tenant still owes for what it used before its suspension;
        one being provisioned has used nothing yet (and may have no database yet)."""
        stmt = select(Tenant.id).where(Tenant.status.not_in(CLOSING | {"provisioning"})).order_by(Tenant.id)
        if issuer_tenant_id is not None:
            stmt = stmt.where(Tenant.id != issuer_tenant_id)
        return list((await self.session.execute(stmt)).scalars())

    async def last_priced_day(self, plan_id: str) -> date | None:
        """Platform-bound: the last day of the latest period a closed bill priced with ``plan_id`` (its usage
        lines and adjustments name the plan; ``period_of`` is the period they priced). Lines are JSON, so
        the LIKE only narrows (it may over-match), the exact test is on the parsed lines. An adjustment
        prices an earlier period than its bill's, so the scan stops at the first bill at or before the
        best period found."""
        needle = json.dumps({"plan_id": plan_id})[1:-1]  # '"plan_id": "X"', as json.dumps writes the lines
        stmt = (select(Bill.period, Bill.lines).where(Bill.status != "draft", Bill.lines.contains(needle, autoescape=True))
                .order_by(Bill.period.desc()))
        best: str | None = None
        for period, lines in await self.session.execute(stmt):
            if best is not None and period <= best:
                break
            for line in json.loads(lines):
                if line["kind"] != "credit" and line.get("plan_id") == plan_id and (best is None or line["period_of"] > best):
                    best = line["period_of"]
        return period_bounds(best)[1] - timedelta(days=1) if best else None

    async def drafts_open(self) -> list[tuple[str, str]]:
        stmt = select(Bill.tenant_id, Bill.period).where(Bill.status == "draft").order_by(Bill.period, Bill.tenant_id)
        return [(t, p) for t, p in await self.session.execute(stmt)]

    async def of_all_tenants(self, period: str) -> list[tuple[Bill, str]]:
        stmt = (select(Bill, Tenant.name).join(Tenant, Tenant.id == Bill.tenant_id)
                .where(Bill.period == period).order_by(Bill.total_cents.desc(), Bill.tenant_id))
        return [(bill, name) for bill, name in await self.session.execute(stmt)]


class IssuerRepository:
    """The one ``billing_issuer`` row (a platform table: any binding reads it)."""

    def __init__(self, session) -> None:  # noqa: ANN001
        self.session = session

    async def get(self) -> BillingIssuer | None:
        return await self.session.get(BillingIssuer, ISSUER_ROW)

    async def put(self, tenant_id: str, outlet_id: str, now: datetime) -> BillingIssuer:
        row = await self.get()
        if row is None:
            row = BillingIssuer(id=ISSUER_ROW, issuer_tenant_id=tenant_id, issuer_outlet_id=outlet_id, updated_at=now)
            self.session.add(row)
        else:
            row.issuer_tenant_id, row.issuer_outlet_id, row.updated_at = tenant_id, outlet_id, now
        await self.session.flush()
        return row

    async def invoice(self, tenant_id: str, invoice_id: str) -> Invoice | None:
        stmt = select(Invoice).where(Invoice.tenant_id == tenant_id, Invoice.id == invoice_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()


class ExchangeRateRepository:
    """The operator's exchange rates (a platform table: any binding reads and marks them)."""

    def __init__(self, session) -> None:  # noqa: ANN001
        self.session = session

    async def get(self, period: str, currency: str, invoice_currency: str, *, lock: bool = False
                  ) -> ExchangeRate | None:
        stmt = select(ExchangeRate).where(ExchangeRate.period == period, ExchangeRate.currency == currency,
                                          ExchangeRate.invoice_currency == invoice_currency)
        if lock:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def of_period(self, period: str) -> list[ExchangeRate]:
        stmt = (select(ExchangeRate).where(ExchangeRate.period == period)
                .order_by(ExchangeRate.currency, ExchangeRate.invoice_currency))
        return list((await self.session.execute(stmt)).scalars())

    async def insert_new(self, row: ExchangeRate) -> bool:
        """Insert unless the (period, currency, invoice currency) exists: two concurrent first puts give one
        row and no error. Returns whether this one inserted it."""
        values = {c.name: getattr(row, c.name) for c in ExchangeRate.__table__.columns}
        result = await self.session.execute(_insert(self.session)(ExchangeRate).values(**values)
                                            .on_conflict_do_nothing().returning(ExchangeRate.period))
        return result.first() is not None

    async def mark_used(self, period: str, currency: str, invoice_currency: str, now: datetime) -> None:
        """The first sealed bill's use is kept."""
        await self.session.execute(
            update(ExchangeRate).where(ExchangeRate.period == period, ExchangeRate.currency == currency,
                                       ExchangeRate.invoice_currency == invoice_currency,
                                       ExchangeRate.used_at.is_(None)).values(used_at=now))
