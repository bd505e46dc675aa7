"""Which voided (and un-voided) numbers a Z or X report of an outlet's business day lists.

A ``numbers_voided`` / ``numbers_unvoided`` record belongs to a business day by the rule invoices follow
(``core.reports.assign_day``): the local date of its sealing time in the outlet's timezone, except that a
record sealed after a day was closed belongs to a later day. So every record is listed by exactly one Z:
the first one whose day is not before its own. Which Z was the latest when a record was sealed is read
from the log: a Z's checkpoint is the log's size at its close, under the log lock voids are sealed under.
"""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.fiscal.core import offline as core_offline
from stalela.fiscal.core.reports import day_end, local_date
from stalela.fiscal.invoices.repository import SeriesRepository
from stalela.fiscal.jurisdictions import get_jurisdiction
from stalela.fiscal.reports.models import ZReport
from stalela.fiscal.reports.repository import ZReportRepository
from stalela.tenancy.models import Outlet
from stalela.tenancy.repository import OutletRepository, TenantRepository

ONE_DAY = timedelta(days=1)
UNVOID_REASON = "late_report"  # an un-void reopens numbers for invoices that came back after their void


async def fiscal_numbers(session: AsyncSession, tenant_id: str, outlet_id: str, series_id: str,
                         first: int, last: int) -> list[str]:
    """The fiscal numbers of counters ``first`` and ``last`` of a series, as its invoices carry them."""
    tenant = await TenantRepository(session).get(tenant_id)
    jurisdiction = get_jurisdiction(tenant.jurisdiction)
    outlet = (await OutletRepository(session).get_many({outlet_id}))[outlet_id]
    series = await SeriesRepository(session).get(series_id)
    # Any type numbered by this series formats its numbers (a DRC outlet has one series for every type; an
    # Argentine series is one receipt type). The generation is the series' own: a block is never carved
    # across a realignment, which starts a new generation under the same series lock.
    invoice_type = min(t for t in jurisdiction.invoice_types if jurisdiction.series_code(t) == series.code)
    return [jurisdiction.fiscal_number(outlet.code, outlet.pos_number, invoice_type, n, series.generation)
            for n in (first, last)]


def _sealed_at(payload: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(payload["at"].replace("Z", "+00:00"))


async def voided_on(session: AsyncSession, outlet: Outlet, last: ZReport | None, day: date) -> list[dict[str, Any]]:
    """The voids and un-voids of ``outlet`` a report of ``day`` lists; ``last``: the outlet's latest Z before it."""
    since_leaf = json.loads(last.payload)["checkpoint"]["tree_size"] if last is not None else 0
    closed = last.business_day if last is not None else None
    # Sealed after the latest close, or before it but dated after its day (a close after midnight): coarse
    # in SQL (a day's margin for the record's time against its row's), exact below.
    rows = await ZReportRepository(session).voids_since(
        outlet.id, since_leaf, day_end(closed, outlet.timezone) - ONE_DAY if closed is not None else None)
    out: list[dict[str, Any]] = []
    for event in rows:
        payload = json.loads(event.payload)
        own = local_date(_sealed_at(payload), outlet.timezone)
        if closed is not None and event.leaf_index >= since_leaf:
            own = max(own, closed + ONE_DAY)
        if (closed is not None and own <= closed) or own > day:
            continue
        if event.kind == core_offline.VOID:
            numbers, reason = payload["fiscal_numbers"], payload["reason"]
        else:
            numbers = await fiscal_numbers(session, event.tenant_id, event.outlet_id, event.series_id,
                                           payload["first"], payload["last"])
            reason = UNVOID_REASON
        entry = {"kind": event.kind, "block_id": event.block_id, "first": payload["first"], "last": payload["last"],
                 "fiscal_numbers": numbers, "reason": reason, "record_hash": event.seal_hash}
        if event.kind == core_offline.UNVOID:
            entry["void"] = payload["void"]
        out.append(entry)
    return out
