"""The arithmetic of a bill, pure (no I/O): periods, the bill's lines, what earlier bills already billed
for a period, and the fiscal invoice (and credit notes) a bill is sealed as.

A bill's ``lines`` column holds a list of dicts, each with ``kind``:

- ``usage``: the period's own rated usage of one resource (``period_of`` = the bill's period);
- ``adjustment``: late usage of an earlier, already closed period (``period_of`` = that period):
  its current rated amount minus what the closed bills already billed for it;
- ``credit``: the opposite, usage voided after its period was sealed; not part of the bill's total,
  it becomes credit notes against the sealed invoices that billed that usage when this bill is
  finalised (``split_credit``), each converted at the rate of the invoice it credits.

Amounts are decimal strings with 2 places, each line rounded once by the rating (``rating.cost_line``);
the bill's total is the sum of its usage and adjustment lines.

Currency conversion: a plan is priced in its currency (EUR), the issuer invoices in its jurisdiction's
(CDF). At finalisation every usage and adjustment line is converted ONCE, here (``convert``):
``invoice_amount = round_half_up(amount × rate, 2)`` at the rate of the bill's period, and the invoice
line's unit price is that ``invoice_amount``. The invoice's total is the sum of its converted lines plus
the issuer's VAT on them, never a conversion of the bill's total (which could differ by rounding).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from stalela.errors import ValidationFailed
from stalela.kit.money import decimal_str, money_str, multiply_money

# ASCII digits (a pattern's \d matches any script's digits), years 2000-2999: a bounded calendar month.
PERIOD_PATTERN = r"^2[0-9]{3}-(0[1-9]|1[0-2])$"
CENTS = Decimal(100)
ZERO = Decimal("0.00")
# Events older than 35 days are refused (usage), so late usage can only belong to the previous one or
# two periods of the one being billed.
LOOKBACK_PERIODS = 2
DESCRIPTION_MAX = 200  # the DRC's line description limit
# The API key id of the principal that seals the platform's bills (bill_service.system_principal): the
# seal quota recognises it (quotas.py). Generated key ids are ``key_...``, never this.
SYSTEM_KEY_ID = "billing"


@dataclass(frozen=True)
class Rated:
    """One resource's rated usage over a period: what ``_rated_lines`` hands the bill."""

    resource: str
    quantity: Decimal
    amount: Decimal  # rounded once, 2 places
    currency: str
    plan_id: str
    version: int
    event_count: int = 0
    events_sha256: str = ""
    days: list[dict[str, Any]] = field(default_factory=list)  # {day, quantity, event_count, events_digest}


def check_period(period: str) -> str:
    if not isinstance(period, str) or not re.fullmatch(PERIOD_PATTERN, period):
        raise ValidationFailed("a period is a calendar month YYYY-MM", code="period_invalid", field="period")
    return period


def period_bounds(period: str) -> tuple[date, date]:
    """(first day, first day of the next period): UTC calendar months."""
    year, month = int(period[:4]), int(period[5:])
    return date(year, month, 1), (date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1))


def period_end(period: str) -> datetime:
    return datetime.combine(period_bounds(period)[1], datetime.min.time(), tzinfo=timezone.utc)


def period_of(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def previous_period(period: str, back: int = 1) -> str:
    index = int(period[:4]) * 12 + int(period[5:]) - 1 - back
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def cents(amount: Decimal | str) -> int:
    return int(Decimal(amount) * CENTS)


def usage_line(kind: str, period: str, r: Rated, amount: Decimal, billed_before: Decimal | None = None
               ) -> dict[str, Any]:
    line = {"kind": kind, "resource": r.resource, "period_of": period, "quantity": decimal_str(r.quantity),
            "amount": money_str(amount), "plan_id": r.plan_id, "rate_card_version": r.version,
            "event_count": r.event_count, "events_sha256": r.events_sha256,
            "days": [{**d, "day": str(d["day"]), "quantity": decimal_str(Decimal(d["quantity"]))} for d in r.days]}
    if billed_before is not None:
        line["billed_before"] = money_str(billed_before)
    return line


def billed_for(closed_lines: list[dict[str, Any]], period: str) -> dict[str, Decimal]:
    """What the closed bills' lines billed, net of credits, for each resource of ``period``."""
    billed: dict[str, Decimal] = {}
    for line in closed_lines:
        if line["period_of"] != period:
            continue
        amount = Decimal(line["amount"])
        sign = -1 if line["kind"] == "credit" else 1
        billed[line["resource"]] = billed.get(line["resource"], ZERO) + sign * amount
    return billed


def card_of(closed_lines: list[dict[str, Any]], period: str) -> tuple[str, int] | None:
    """The (plan, rate-card version) that priced ``period`` on its closed bills (every line of a period is
    priced by one card), or None when nothing was priced (no usage then, or only credits)."""
    for line in closed_lines:
        if line["period_of"] == period and line["kind"] != "credit" and line.get("plan_id") is not None:
            return line["plan_id"], line["rate_card_version"]
    return None


def differences(period: str, current: list[Rated], billed: dict[str, Decimal]) -> list[dict[str, Any]]:
    """Adjustment lines (billed too little) and credit lines (billed too much) of an earlier period."""
    out: list[dict[str, Any]] = []
    rated = {r.resource: r for r in current}
    for resource in sorted(set(rated) | set(billed)):
        now = rated[resource].amount if resource in rated else ZERO
        diff = now - billed.get(resource, ZERO)
        if diff > 0:
            out.append(usage_line("adjustment", period, rated[resource], diff, billed.get(resource, ZERO)))
        elif diff < 0:
            r = rated.get(resource)
            out.append({"kind": "credit", "resource": resource, "period_of": period, "amount": money_str(-diff),
                        "plan_id": r.plan_id if r else None, "rate_card_version": r.version if r else None,
                        "invoice_id": None})
    return out


def billed_total(lines: list[dict[str, Any]]) -> int:
    """The bill's total in cents: its usage and adjustment lines (credits are documents of their own)."""
    return sum(cents(line["amount"]) for line in lines if line["kind"] != "credit")


def rate_cards(lines: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return sorted({(line["plan_id"], line["rate_card_version"]) for line in lines
                   if line.get("plan_id") is not None and line.get("rate_card_version") is not None})


# --- the fiscal invoice ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """How a jurisdiction's issuer invoices a platform service (docs/billing.md)."""

    invoice_type: str
    credit_type: str
    credit_nature: str
    line: dict[str, str]  # the tax fields of every line
    buyer_type: str


# DRC: a service (SER) taxed at the normal VAT rate, group B (16 %, fiscal/jurisdictions/drc.py); the
# buyer is the billed tenant, a legal person (PM: name and tax id). Credit notes are FA, nature COR.
PROFILES: dict[str, Profile] = {
    "CD": Profile("FV", "FA", "COR", {"item_type": "SER", "tax_group": "B"}, "PM"),
}


@dataclass(frozen=True)
class Conversion:
    """A bill's conversion: ``rate`` units of ``invoice_currency`` per unit of ``currency``."""

    currency: str
    invoice_currency: str
    rate: Decimal


def convert(amount: Decimal, rate: Decimal) -> Decimal:
    """THE conversion of a line: the exact product, rounded once, half up, to 2 decimals."""
    return multiply_money(amount, rate)


def convert_lines(lines: list[dict[str, Any]], conversion: Conversion | None) -> None:
    """Give every line its ``invoice_amount`` (the amount itself without a conversion), at finalisation."""
    for line in lines:
        line["invoice_amount"] = money_str(convert(Decimal(line["amount"]), conversion.rate)) if conversion \
            else line["amount"]


def _converted(line: dict[str, Any], conversion: Conversion | None) -> str:
    if conversion is None:
        return ""
    return f" [{line['amount']} {conversion.currency} × {decimal_str(conversion.rate)} = {line['invoice_amount']} " \
           f"{conversion.invoice_currency}]"


def describe(line: dict[str, Any], conversion: Conversion | None = None) -> str:
    what = "adjustment " if line["kind"] == "adjustment" else ""
    card = f"{line['plan_id']} v{line['rate_card_version']}" if line.get("plan_id") else "-"
    text = f"{what}{line['resource']} {line['period_of']}: {line.get('quantity', '')} (rate card {card})"
    # The conversion is the part an auditor needs: it goes first when the limit cuts.
    suffix = _converted(line, conversion)
    return text[:DESCRIPTION_MAX - len(suffix)] + suffix


def invoice_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The bill's lines that become invoice lines: usage and adjustments with a (converted) amount."""
    return [line for line in lines if line["kind"] != "credit" and Decimal(line["invoice_amount"]) > 0]


def invoice_body(profile: Profile, outlet_id: str, currency: str, buyer: dict[str, str], reference: str,
                 lines: list[dict[str, Any]], conversion: Conversion | None = None) -> dict[str, Any]:
    """The sealing request of a bill (``currency``: the invoice's): one line per billed line with an amount,
    quantity 1 and the (converted) rated amount as unit price, so that each invoice line's total is
    exactly that amount (before tax). Lines carry ``invoice_amount`` (``convert_lines``)."""
    return {
        "outlet_id": outlet_id, "type": profile.invoice_type, "price_mode": "ht", "currency": currency,
        "reference": reference, "buyer": {"type": profile.buyer_type, **buyer},
        "lines": [{"description": describe(line, conversion), "code": line["resource"][:64], **profile.line,
                   "quantity": "1", "unit_price": line["invoice_amount"]} for line in invoice_lines(lines)],
    }


def credit_body(profile: Profile, outlet_id: str, currency: str, buyer: dict[str, str], original: str,
                line: dict[str, Any], conversion: Conversion | None = None) -> dict[str, Any]:
    suffix = _converted(line, conversion)
    text = f"credit {line['resource']} {line['period_of']}: voided after sealing"
    return {
        "outlet_id": outlet_id, "type": profile.credit_type, "nature": profile.credit_nature, "original": original,
        "price_mode": "ht", "currency": currency, "buyer": {"type": profile.buyer_type, **buyer},
        "lines": [{"description": text[:DESCRIPTION_MAX - len(suffix)] + suffix, "code": line["resource"][:64],
                   **profile.line, "quantity": "1", "unit_price": line["invoice_amount"]}],
    }


def bill_key(tenant_id: str, period: str) -> str:
    """The Idempotency-Key of a bill's seal: a re-run after a crash replays into the same invoice."""
    return f"billing:{tenant_id}:{period}"


def credit_key(tenant_id: str, period: str, line: dict[str, Any]) -> str:
    """One per credited invoice: a credit may be split across the invoices that billed its usage."""
    return f"billing-credit:{tenant_id}:{period}:{line['period_of']}:{line['resource']}:{line['original_invoice_id']}"


@dataclass(frozen=True)
class Creditable:
    """What one sealed invoice billed for a (resource, period), and what credit notes already took back
    from it, in the bill's currency (``amount``) and in the invoice's (``invoice_amount``)."""

    invoice_id: str
    conversion: Conversion | None  # the rate that invoice was converted at (None: not converted)
    billed: Decimal
    billed_invoice: Decimal
    credited: Decimal = ZERO
    credited_invoice: Decimal = ZERO

    @property
    def left(self) -> Decimal:
        return self.billed - self.credited


def split_credit(line: dict[str, Any], sources: list[Creditable]) -> list[dict[str, Any]]:
    """A credit line split across the invoices that billed its usage, newest first (an adjustment's
    invoice before the period's own), never more than what remains creditable on each: each part is
    converted at the rate of the invoice it credits (the rate of the period it corrects), and a part that
    takes all that remains takes exactly the invoice amount that remains (no rounding can exceed it).
    What no invoice can take is left out (the caller logs it; the next bill's difference retries it)."""
    remaining, parts = Decimal(line["amount"]), []
    for source in sources:
        if remaining <= 0:
            break
        part = min(remaining, source.left)
        if part <= 0:
            continue
        left_invoice = source.billed_invoice - source.credited_invoice
        converted = convert(part, source.conversion.rate) if source.conversion else part
        invoice_amount = left_invoice if part == source.left else min(converted, left_invoice)
        parts.append({**line, "amount": money_str(part), "invoice_amount": money_str(invoice_amount),
                      "original_invoice_id": source.invoice_id,
                      "exchange_rate": decimal_str(source.conversion.rate) if source.conversion else None})
        remaining -= part
    return parts
