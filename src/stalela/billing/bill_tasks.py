"""The monthly cycle's transactions: one per billed tenant, so one tenant's failure (no rate card, a
refused seal) leaves the others' bills done and is retried on the next run."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from stalela.billing import bill_service as service
from stalela.billing.bill_lines import check_period
from stalela.billing.bill_repository import BillRepository, IssuerRepository
from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.db.session import Database
from stalela.errors import StalelaError
from stalela.observability.logging import get_logger
from stalela.tenancy.context import bind_platform, bind_tenant

log = get_logger("stalela.billing.bills")


@dataclass
class CloseReport:
    period: str
    bills: dict[str, dict] = field(default_factory=dict)  # tenant id -> the bill's summary
    failed: dict[str, str] = field(default_factory=dict)  # tenant id -> "code: detail"


async def billed_tenants(db: Database) -> list[str]:
    async with db.transaction(readonly=True) as session:
        await bind_platform(session)
        issuer = await IssuerRepository(session).get()
        return await BillRepository(session).billed_tenants(issuer.issuer_tenant_id if issuer else None)


async def close_period(db: Database, settings: Settings, period: str, *, finalize_now: bool = False,
                       tenant_ids: list[str] | None = None, now: datetime | None = None) -> CloseReport:
    """Draft (or refresh) every billed tenant's bill of ``period``; finalise those past their grace
    (``finalize_now``: all). Idempotent: a closed bill is left as it is."""
    check_period(period)
    now = now or utcnow()
    report = CloseReport(period)
    for tenant_id in tenant_ids if tenant_ids is not None else await billed_tenants(db):
        await _one(db, settings, report, tenant_id, period, now, force=finalize_now)
    return report


async def finalize_due(db: Database, settings: Settings, now: datetime | None = None) -> CloseReport:
    """Refresh every open draft and seal those whose grace has passed."""
    now = now or utcnow()
    report = CloseReport("*")
    async with db.transaction(readonly=True) as session:
        await bind_platform(session)
        drafts = await BillRepository(session).drafts_open()
    for tenant_id, period in drafts:
        await _one(db, settings, report, tenant_id, period, now, force=False)
    return report


async def _one(db: Database, settings: Settings, report: CloseReport, tenant_id: str, period: str,
               now: datetime, *, force: bool) -> None:
    try:
        async with db.transaction() as session:
            await bind_tenant(session, tenant_id)
            bill = await service.finalize(session, settings, tenant_id, period, now=now, force=force)
            report.bills[tenant_id] = service.summary(bill)
    except StalelaError as exc:
        report.failed[tenant_id] = f"{exc.code}: {exc.detail}"
        log.warning("bill_failed", tenant_id=tenant_id, period=period, code=exc.code, detail=exc.detail)
