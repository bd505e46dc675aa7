"""What sealing adds up for analytics (``stalela.analytics`` reads it): additive sums per business day and month.

Each sealed invoice adds to a few ``analytics_sales`` rows (``kind``): its business day's and month's totals
(``day``, ``month``: key ""), its type's (``type``, ``type_m``), one per tax group of its totals (``tax``,
``tax_m``: key ``group|rate``), each per outlet and currency; and, when its buyer is a data subject, to the
buyer's rows of the month, quarter and year and currency in ``analytics_buyers`` (over the whole tenant). The month rows let a
year be read as twelve rows per outlet instead of 365; the day rows cut a range at any day. The rows a
transaction touches are summed in memory and written by one upsert per table that only adds
(``count = count + excluded.count``; the buyers' only when the transaction sealed for identified buyers), so a
group commit of hundreds of invoices costs the same one or two statements, and the rows need no read first.
Sealing holds the tenant's log lock, so no two transactions add to the same tenant's rows at once (no lock
waits, no deadlock).
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any, Mapping

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.fiscal.core.reports import cents
from stalela.fiscal.invoices.repository import SalesTallyRepository

DAY, MONTH, TYPE, TYPE_M, TAX, TAX_M = "day", "month", "type", "type_m", "tax", "tax_m"
# (per business day, per month) of each dimension.
GRAINS = {"total": (DAY, MONTH), "type": (TYPE, TYPE_M), "tax": (TAX, TAX_M)}


def tax_key(group: str, rate: str) -> str:
    return f"{group}|{rate}"


def month_of(day: date) -> date:
    return day.replace(day=1)


def buyer_periods(day: date) -> tuple[tuple[str, date], ...]:
    """The (grain, first day) of the month, quarter and year a business day is in."""
    return (("m", day.replace(day=1)), ("q", date(day.year, (day.month - 1) // 3 * 3 + 1, 1)),
            ("y", date(day.year, 1, 1)))


class Tallies:
    """The sums of one transaction's seals, written once by ``write``."""

    def __init__(self) -> None:
        # (tenant, kind, period, outlet, currency, key) -> [count, credit_count, amount, credited, base, vat, ref]
        self._rows: dict[tuple, list[Any]] = {}
        # (tenant, currency, grain, period, subject) -> the same sums (base and vat unused)
        self._buyers: dict[tuple, list[Any]] = {}
        self._at: datetime | None = None

    def _add(self, key: tuple, sign: int, amount: int, base: int, vat: int, ref: str | None = None,
             rows: dict[tuple, list[Any]] | None = None) -> None:
        rows = self._rows if rows is None else rows
        acc = rows.get(key)
        if acc is None:
            acc = rows[key] = [0, 0, 0, 0, 0, 0, None]
        acc[0] += 1
        acc[2] += sign * amount
        if sign < 0:
            acc[1] += 1
            acc[3] += amount
        acc[4] += sign * base
        acc[5] += sign * vat
        if ref is not None:
            acc[6] = ref

    def add(self, *, tenant_id: str, outlet_id: str, day: date, currency: str, type: str, credit: bool,
            totals: Mapping[str, Any], buyer_subject: str | None, invoice_id: str | None, at: datetime) -> None:
        """One sealed invoice: ``totals`` as sealed (decimal strings); a credit note counts negative."""
        sign = -1 if credit else 1
        month = month_of(day)
        base = vat = 0
        for g in totals["groups"]:
            g_amount, g_base, g_vat = cents(g["amount"]), cents(g["base"]), cents(g["vat"])
            base += g_base
            vat += g_vat
            key = tax_key(g["group"], g["rate"])
            self._add((tenant_id, TAX, day, outlet_id, currency, key), sign, g_amount, g_base, g_vat)
            self._add((tenant_id, TAX_M, month, outlet_id, currency, key), sign, g_amount, g_base, g_vat)
        total = cents(totals["total"])
        for kind, period, key in ((DAY, day, ""), (MONTH, month, ""), (TYPE, day, type), (TYPE_M, month, type)):
            self._add((tenant_id, kind, period, outlet_id, currency, key), sign, total, base, vat)
        if buyer_subject is not None:
            for grain, period in buyer_periods(day):
                self._add((tenant_id, currency, grain, period, buyer_subject), sign, total, base, vat, invoice_id,
                          self._buyers)
        self._at = at if self._at is None or at > self._at else self._at

    def rows(self) -> list[dict[str, Any]]:
        # In key order: every writer of a row touches it in the same order (no deadlock between two writers).
        return [dict(tenant_id=t, kind=k, period=p, outlet_id=o, currency=c, key=key, count=n, credit_count=cn,
                     amount=a, credited=cr, base=b, vat=v, updated_at=self._at)
                for (t, k, p, o, c, key), (n, cn, a, cr, b, v, _) in sorted(self._rows.items())]

    def buyer_rows(self) -> list[dict[str, Any]]:
        return [dict(tenant_id=t, currency=c, grain=g, period=p, subject_id=subject, count=n, credit_count=cn,
                     amount=a, credited=cr, ref=ref, updated_at=self._at)
                for (t, c, g, p, subject), (n, cn, a, cr, _, _, ref) in sorted(self._buyers.items())]

    async def write(self, session: AsyncSession) -> None:
        repo = SalesTallyRepository(session)
        if self._rows:
            await repo.add(self.rows())
            self._rows.clear()
        if self._buyers:
            await repo.add_buyers(self.buyer_rows())
            self._buyers.clear()
