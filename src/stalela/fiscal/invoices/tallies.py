"""What sealing adds up for analytics (``stalela.analytics`` reads it): additive sums per business day.

Each sealed invoice adds to a few ``analytics_sales`` rows: its type's, one per tax group of its totals,
and its buyer's (by data subject, per month). The rows a transaction touches are summed in memory and
written by ONE upsert that only adds (``count = count + excluded.count``), so a group commit of hundreds
of invoices costs one statement, and the rows need no read first. Sealing holds the tenant's log lock, so
no two transactions add to the same tenant's rows at once (no lock waits, no deadlock).
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any, Mapping

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.fiscal.core.reports import cents
from stalela.fiscal.invoices.repository import SalesTallyRepository

TYPE, TAX, BUYER = "type", "tax", "buyer"
KINDS = (TYPE, TAX, BUYER)


def tax_key(group: str, rate: str) -> str:
    return f"{group}|{rate}"


def month_of(day: date) -> date:
    return day.replace(day=1)


class Tallies:
    """The sums of one transaction's seals, written once by ``write``."""

    def __init__(self) -> None:
        # (tenant, kind, period, outlet, currency, key) -> [count, credit_count, amount, base, vat, ref]
        self._rows: dict[tuple[str, str, date, str, str, str], list[Any]] = {}
        self._at: datetime | None = None

    def _add(self, key: tuple[str, str, date, str, str, str], sign: int, amount: int, base: int, vat: int,
             ref: str | None = None) -> None:
        acc = self._rows.get(key)
        if acc is None:
            acc = self._rows[key] = [0, 0, 0, 0, 0, None]
        acc[0] += 1
        acc[1] += 1 if sign < 0 else 0
        acc[2] += sign * amount
        acc[3] += sign * base
        acc[4] += sign * vat
        if ref is not None:
            acc[5] = ref

    def add(self, *, tenant_id: str, outlet_id: str, day: date, currency: str, type: str, credit: bool,
            totals: Mapping[str, Any], buyer_subject: str | None, invoice_id: str | None, at: datetime) -> None:
        """One sealed invoice: ``totals`` as sealed (decimal strings); a credit note counts negative."""
        sign = -1 if credit else 1
        base = vat = 0
        for g in totals["groups"]:
            g_amount, g_base, g_vat = cents(g["amount"]), cents(g["base"]), cents(g["vat"])
            base += g_base
            vat += g_vat
            self._add((tenant_id, TAX, day, outlet_id, currency, tax_key(g["group"], g["rate"])), sign, g_amount,
                      g_base, g_vat)
        total = cents(totals["total"])
        self._add((tenant_id, TYPE, day, outlet_id, currency, type), sign, total, base, vat)
        if buyer_subject is not None:
            self._add((tenant_id, BUYER, month_of(day), outlet_id, currency, buyer_subject), sign, total, base, vat,
                      invoice_id)
        self._at = at if self._at is None or at > self._at else self._at

    def rows(self) -> list[dict[str, Any]]:
        # In key order: every writer of a row touches it in the same order (no deadlock between two writers).
        return [dict(tenant_id=t, kind=k, period=p, outlet_id=o, currency=c, key=key, count=n, credit_count=cn,
                     amount=a, base=b, vat=v, ref=ref, updated_at=self._at)
                for (t, k, p, o, c, key), (n, cn, a, b, v, ref) in sorted(self._rows.items())]

    async def write(self, session: AsyncSession) -> None:
        if self._rows:
            await SalesTallyRepository(session).add(self.rows())
            self._rows.clear()
