"""The one call the sealing pipeline makes into reports: add the invoice to its business day's figures.

Runs inside ``seal_invoice`` while the outlet's series row is locked, so the read-modify-write of
the day's row is serialized with every other seal and with day closes of the same outlet.
"""
from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.fiscal.core.invoice import ComputedInvoice
from stalela.fiscal.core.reports import Figures, assign_day, local_date
from stalela.fiscal.jurisdictions import get_jurisdiction
from stalela.fiscal.reports.models import DayFigures
from stalela.fiscal.reports.repository import DayFiguresRepository
from stalela.kit.clock import rfc3339
from stalela.tenancy.models import Outlet


def dump(figures: Figures) -> str:
    return json.dumps(figures.to_store(), separators=(",", ":"))


def load(text: str) -> Figures:
    return Figures.from_store(json.loads(text))


async def record_invoice(
    session: AsyncSession, outlet: Outlet, counter: int, issued: datetime, invoice: ComputedInvoice
) -> DayFigures:
    """Add a sealed invoice to its outlet's open business day (created on first use). Caller holds the series lock."""
    repo = DayFiguresRepository(session)
    latest = await repo.latest(outlet.id)
    day = assign_day(local_date(issued, outlet.timezone), latest.business_day if latest else None,
                     latest is not None and latest.z_report_id is not None)
    row = latest if latest is not None and latest.business_day == day else None
    figures = load(row.figures) if row else Figures()
    figures.add_invoice(
        type=invoice.type,
        credit=invoice.type in get_jurisdiction(invoice.jurisdiction).credit_note_types,
        totals=invoice.totals_as_json(),
        payments=invoice.payments_as_json(),
        counter=counter,
        issued_at=rfc3339(issued),
    )
    if row is None:
        row = DayFigures(tenant_id=outlet.tenant_id, outlet_id=outlet.id, business_day=day, figures=dump(figures),
                         z_report_id=None, updated_at=issued)
        session.add(row)
    else:
        row.figures = dump(figures)
        row.updated_at = issued
    return row
