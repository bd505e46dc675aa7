"""The monthly cycle's transactions: one per billed tenant, so one tenant's failure (no rate card, a
refused seal, or a bug: any exception, logged with its stack, recorded on the draft as
``internal_error: <type>``) leaves the others' bills done and is retried on the next run."""
from __future__ import annotations

import os
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
    """The draft commits first, then (when due) the seal in a transaction of its own: a failed seal
    leaves the refreshed draft, and its reason is recorded on it for the operator to see."""
    try:
        async with db.transaction() as session:
            await bind_tenant(session, tenant_id)
            bill = await service.draft(session, settings, tenant_id, period, now)
            summary, due = service.summary(bill), service.due(bill, now, force)
        if due:
            _exit_if(settings, "drafted")
            async with db.transaction() as session:
                await bind_tenant(session, tenant_id)
                summary = service.summary(await service.finalize(session, settings, tenant_id, period, now=now,
                                                                 force=force))
            if summary["status"] == "sealed":
                _exit_if(settings, "sealed")
        report.bills[tenant_id] = summary
    except StalelaError as exc:
        report.failed[tenant_id] = f"{exc.code}: {exc.detail}"
        log.warning("bill_failed", tenant_id=tenant_id, period=period, code=exc.code, detail=exc.detail)
        await _hold(db, settings, tenant_id, period, now, report.failed[tenant_id])
    except Exception as exc:  # noqa: BLE001  a bug in one tenant's bill must not stop the others' bills
        report.failed[tenant_id] = f"internal_error: {type(exc).__name__}"
        log.exception("bill_failed", tenant_id=tenant_id, period=period, code="internal_error")
        await _hold(db, settings, tenant_id, period, now, report.failed[tenant_id])


async def _hold(db: Database, settings: Settings, tenant_id: str, period: str, now: datetime, reason: str) -> None:
    try:
        async with db.transaction() as session:
            await bind_tenant(session, tenant_id)
            await service.hold(session, settings, tenant_id, period, reason, now)
    except Exception:  # noqa: BLE001  the report already says why the bill failed; this only makes it visible
        log.exception("bill_hold_failed", tenant_id=tenant_id, period=period)


def _exit_if(settings: Settings, point: str) -> None:
    if settings.billing_exit_at == point:
        os._exit(137)  # the kill -9 test: dead right after ``point``'s commit, before anything else
