"""The authority's answers, summed for analytics (``analytics_authority``): what each settling transaction adds.

Every place that moves an invoice's sync row out of ``pending`` (acknowledged, failed, rejected; and the rare
ARCA receipt authorised after it was marked rejected) records it here in the same transaction, so the sums
are exactly the outcomes committed. Rows are per local day of sealing in the outlet's timezone (the day an
invoice's approval belongs to), outlet and outcome; the time from the seal to the outcome goes into a
histogram whose buckets are named by their upper bound.
"""
from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.authority.repository import AuthorityRepository
from stalela.fiscal.core.reports import local_date
from stalela.tenancy.repository import OutletRepository

OUTCOMES = ("acknowledged", "failed", "rejected")
# (column, upper bound in seconds): counts per bucket, not cumulative.
BUCKETS: tuple[tuple[str, float], ...] = (
    ("le_1s", 1), ("le_5s", 5), ("le_15s", 15), ("le_1m", 60), ("le_5m", 300), ("le_15m", 900), ("le_1h", 3600),
    ("le_6h", 21_600), ("le_1d", 86_400), ("over_1d", math.inf))


def bucket_of(seconds: float) -> str:
    return next(name for name, bound in BUCKETS if seconds <= bound)


class Outcomes:
    """The outcomes of one transaction, summed per row and written by one upsert (``write``)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._zones: dict[str, str] = {}
        self._rows: dict[tuple[str, date, str, str], dict[str, Any]] = {}

    async def add(self, tenant_id: str, outlet_id: str, sealed_at: datetime, outcome: str, at: datetime, *,
                  sign: int = 1) -> None:
        """``sign`` -1 takes an outcome back (a rejection ARCA turned into an authorisation: ``at`` is then
        when the rejection was recorded, so exactly what was added is removed)."""
        if outlet_id not in self._zones:
            outlet = await OutletRepository(self.session).get(outlet_id)
            self._zones[outlet_id] = outlet.timezone if outlet is not None else "UTC"
        day = local_date(sealed_at, self._zones[outlet_id])
        row = self._rows.setdefault((tenant_id, day, outlet_id, outcome), {
            "tenant_id": tenant_id, "day": day, "outlet_id": outlet_id, "outcome": outcome, "count": 0, "ms_sum": 0,
            **{name: 0 for name, _ in BUCKETS}, "updated_at": at})
        seconds = max((at - sealed_at).total_seconds(), 0.0)
        row["count"] += sign
        row["ms_sum"] += sign * round(seconds * 1000)
        row[bucket_of(seconds)] += sign
        row["updated_at"] = max(row["updated_at"], at)

    def rows(self) -> list[dict[str, Any]]:
        """The rows to add, in key order (every writer touches rows in the same order: no deadlock)."""
        return [self._rows[k] for k in sorted(self._rows)]

    async def write(self) -> None:
        if self._rows:
            await AuthorityRepository(self.session).add_tallies(self.rows())
            self._rows.clear()


async def record(session: AsyncSession, tenant_id: str, outlet_id: str, sealed_at: datetime, outcome: str,
                 at: datetime) -> None:
    """One invoice's outcome (the common case: a transaction settles one invoice)."""
    outcomes = Outcomes(session)
    await outcomes.add(tenant_id, outlet_id, sealed_at, outcome, at)
    await outcomes.write()
