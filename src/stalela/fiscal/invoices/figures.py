"""What the sealing pipeline does for the reports above it: add each invoice to its business day's figures
(and, for analytics, to the additive sums of ``tallies.py``, under the same business day).

Runs inside the sealing transaction while the outlet's series row is locked, so the read-modify-write of
the day's row is serialized with every other seal and with day closes of the same outlet.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.fiscal.core.invoice import ComputedInvoice
from stalela.fiscal.core.reports import Figures, assign_day, local_date
from stalela.fiscal.jurisdictions import get_jurisdiction
from stalela.fiscal.invoices.models import DayFigures
from stalela.fiscal.invoices.repository import DayFiguresRepository
from stalela.fiscal.invoices.tallies import Tallies
from stalela.kit.clock import rfc3339
from stalela.tenancy.models import Outlet


OUTLET_SERIES = "main"


def day_position(series_code: str, counter: int, leaf_index: int) -> int:
    """An invoice's place in its outlet's sequence, which business days and Z reports cut.

    Where an outlet has one series (the DRC), its counter. Where it numbers each receipt type
    apart (Argentina), counters of different series do not interleave, so the place is the
    invoice's position in the tenant's Merkle log (leaf index + 1): increasing along the outlet's
    seals and provable by an inclusion proof.
    """
    return counter if series_code == OUTLET_SERIES else leaf_index + 1


def dump(figures: Figures) -> str:
    return json.dumps(figures.to_store(), separators=(",", ":"))


def load(text: str) -> Figures:
    return Figures.from_store(json.loads(text))


class DayBook:
    """The business-day rows a transaction's seals touch: each read once, updated in memory, written
    once by ``write`` (a group commit seals many invoices of one outlet at a time).

    The caller holds the outlet's series lock, so the read-modify-write cannot interleave with another
    seal or a day close of the same outlet.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._latest: dict[str, DayFigures | None] = {}
        self._open: dict[int, tuple[DayFigures, Figures]] = {}
        self.tallies = Tallies()

    async def preload(self, outlet_ids: list[str]) -> None:
        """Read the latest day of many outlets at once (what ``add`` would read one by one)."""
        wanted = [o for o in outlet_ids if o not in self._latest]
        if wanted:
            found = await DayFiguresRepository(self.session).latest_many(wanted)
            for outlet_id in wanted:
                self._latest[outlet_id] = found.get(outlet_id)

    async def latest_day(self, outlet: Outlet) -> tuple[date, bool] | None:
        """The outlet's most recent business day with figures and whether a Z closed it (None: no day yet)."""
        if outlet.id not in self._latest:
            self._latest[outlet.id] = await DayFiguresRepository(self.session).latest(outlet.id)
        latest = self._latest[outlet.id]
        return None if latest is None else (latest.business_day, latest.z_report_id is not None)

    async def add(self, outlet: Outlet, counter: int, issued: datetime, invoice: ComputedInvoice, *,
                  sealed: Mapping[str, Any] | None = None, offline: bool = False,
                  buyer_subject: str | None = None) -> DayFigures:
        """``sealed``: the invoice's ``totals``, ``payments`` and ``issued_at`` as already rendered for
        its seal, so they are not rendered again (the same values, computed from ``invoice``, otherwise).
        ``buyer_subject``: the buyer's data subject, if any (analytics' top buyers)."""
        if outlet.id in self._latest:
            latest = self._latest[outlet.id]
        else:
            latest = self._latest[outlet.id] = await DayFiguresRepository(self.session).latest(outlet.id)
        day = assign_day(local_date(issued, outlet.timezone), latest.business_day if latest else None,
                         latest is not None and latest.z_report_id is not None)
        if latest is not None and latest.business_day == day:
            row = latest
        else:
            row = DayFigures(tenant_id=outlet.tenant_id, outlet_id=outlet.id, business_day=day,
                             figures=dump(Figures()), z_report_id=None, updated_at=issued)
            self.session.add(row)
            self._latest[outlet.id] = row
        entry = self._open.get(id(row))
        if entry is None:
            entry = self._open[id(row)] = (row, load(row.figures))
        credit = invoice.type in get_jurisdiction(invoice.jurisdiction).credit_note_types
        totals = sealed["totals"] if sealed else invoice.totals_as_json()
        self.tallies.add(tenant_id=outlet.tenant_id, outlet_id=outlet.id, day=day, currency=invoice.currency,
                         type=invoice.type, credit=credit, totals=totals, buyer_subject=buyer_subject,
                         invoice_id=sealed.get("id") if sealed else None, at=issued)
        entry[1].add_invoice(
            type=invoice.type,
            credit=credit,
            totals=totals,
            payments=sealed["payments"] if sealed else invoice.payments_as_json(),
            counter=counter,
            issued_at=sealed["issued_at"] if sealed else rfc3339(issued),
            offline=offline,
        )
        row.updated_at = issued
        return row

    async def write(self) -> None:
        for row, figures in self._open.values():
            row.figures = dump(figures)
        self._open.clear()
        await self.tallies.write(self.session)
