"""Rating, pure: what a quantity of a resource costs under a rate card (no I/O; ``Decimal`` only).

A rate card prices each resource with a ``PriceEntry``: a unit price for every ``per`` units (1,000
API calls, 10^9 byte-days of storage), either flat (``unit_price``) or graduated (``tiers``, each
tier's units at that tier's price), after a free allowance (``free`` units per period).

Tier bounds and the allowance both count from the period's first unit: the allowance is the first
``free`` units, whichever tiers they fall in, and the billable units are priced by the tiers they fall
in (an allowance of 1,500 over a first tier of 1,000 leaves tier 1 entirely free and starts billing in
tier 2 at unit 1,500). This is what a tenant reads on its price list: "the first N are free".

Rounding: each line's exact amount is rounded ONCE, half-up, to 2 decimals (``kit.money.round_money``,
the project's one money rule, also the rule of the invoices the bill is sealed as); the bill's total
is the sum of its rounded lines, so every figure a tenant sees adds up exactly. Half-up rather than
half-even: a bill has a handful of lines, so half-even's statistical fairness over many roundings buys
nothing, while half-up is what a tenant recomputing a line by hand (or a tax auditor) expects.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Iterable

from stalela.kit.money import ZERO, money_context, round_money, decimal_str

# How many units a price is for unless the entry says otherwise: prices read as a price list does.
GIGA = Decimal(10) ** 9
DEFAULT_PER: dict[str, Decimal] = {
    "api_calls": Decimal(1000),             # per 1,000 calls
    "invoices_sealed": Decimal(1),          # per invoice
    "storage_bytes": GIGA,                  # per GB-day (the daily aggregate is a time-weighted byte-day)
    "network_bytes": GIGA,                  # per GB
    "cpu_seconds": Decimal(3600),           # per CPU-hour
    "memory_byte_seconds": 3600 * GIGA,     # per GB-hour
}
PRICE_PLACES = 8  # a unit price carries at most 8 decimals


def default_per(resource: str) -> Decimal:
    return DEFAULT_PER.get(resource, Decimal(1))


@dataclass(frozen=True)
class Tier:
    up_to: Decimal | None  # the tier ends at this many units of the period (None: no end)
    unit_price: Decimal


@dataclass(frozen=True)
class PriceEntry:
    """How one resource is priced: ``unit_price`` (flat) or ``tiers`` (graduated), never both."""
    per: Decimal
    free: Decimal = ZERO
    unit_price: Decimal | None = None
    tiers: tuple[Tier, ...] = ()

    def bands(self) -> list[tuple[Decimal, Decimal | None, Decimal]]:
        """(from, to, unit price) in ascending order; the last ``to`` is None."""
        if not self.tiers:
            return [(Decimal(0), None, self.unit_price or ZERO)]
        out, low = [], Decimal(0)
        for tier in self.tiers:
            out.append((low, tier.up_to, tier.unit_price))
            low = tier.up_to if tier.up_to is not None else low
        return out

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"per": decimal_str(self.per), "free": decimal_str(self.free)}
        if self.tiers:
            out["tiers"] = [{"up_to": None if t.up_to is None else decimal_str(t.up_to), "unit_price": decimal_str(t.unit_price)}
                            for t in self.tiers]
        else:
            out["unit_price"] = decimal_str(self.unit_price or ZERO)
        return out

    @classmethod
    def from_json(cls, resource: str, data: dict[str, Any]) -> PriceEntry:
        """From the stored (already validated) form; ``per`` defaults by resource."""
        tiers = tuple(Tier(None if t.get("up_to") is None else Decimal(str(t["up_to"])), Decimal(str(t["unit_price"])))
                      for t in data.get("tiers") or ())
        per = data.get("per")
        return cls(per=Decimal(str(per)) if per is not None else default_per(resource),
                   free=Decimal(str(data.get("free") or 0)),
                   unit_price=None if tiers else Decimal(str(data.get("unit_price") or 0)), tiers=tiers)


@dataclass(frozen=True)
class RateCardView:
    """One version of a plan's prices, as the bills and anomaly detection read it."""
    plan_id: str
    version: int
    currency: str
    effective_from: date
    prices: dict[str, PriceEntry] = field(default_factory=dict)


@dataclass(frozen=True)
class CostLine:
    """One resource's rated usage on a bill: exact inputs, the amount rounded once, and how it was got."""
    resource: str
    quantity: Decimal
    free: Decimal       # units of the allowance used
    billable: Decimal   # quantity - free (never below 0)
    amount: Decimal     # rounded to 2 decimals, half-up
    currency: str
    plan_id: str
    rate_card_version: int
    description: str

    def as_json(self) -> dict[str, Any]:
        return {"resource": self.resource, "quantity": decimal_str(self.quantity), "free": decimal_str(self.free),
                "billable": decimal_str(self.billable), "amount": str(self.amount), "currency": self.currency,
                "plan_id": self.plan_id, "rate_card_version": self.rate_card_version,
                "description": self.description}


def cost(entry: PriceEntry, quantity: Decimal) -> Decimal:
    """The exact (unrounded) cost of ``quantity`` units in one period. Below the allowance (or a
    negative quantity, e.g. a period of voids only) nothing is billable."""
    with money_context():
        return sum((amount for *_, amount in _segments(entry, quantity)), Decimal(0))


def cost_line(card: RateCardView, resource: str, quantity: Decimal) -> CostLine:
    """The bill's line for ``resource``. A resource the card does not price costs nothing (its line
    says so), so usage of a newly registered resource is never billed by surprise."""
    entry = card.prices.get(resource)
    if entry is None:
        return CostLine(resource, quantity, ZERO, max(quantity, ZERO), ZERO, card.currency, card.plan_id, card.version,
                        f"{decimal_str(quantity)} {resource}: not priced by {card.plan_id} v{card.version}")
    free = min(max(quantity, ZERO), entry.free)
    billable = max(quantity - entry.free, ZERO)
    segments = _segments(entry, quantity)
    with money_context():
        exact = sum((amount for *_, amount in segments), Decimal(0))
    amount = round_money(exact)
    parts = [f"{decimal_str(units)} × {decimal_str(price)} {card.currency}/{decimal_str(entry.per)}" for units, price, _ in segments]
    description = (f"{decimal_str(quantity)} {resource}"
                   + (f" − {decimal_str(free)} free" if free else "")
                   + (f": {' + '.join(parts)} = {decimal_str(exact)}" if parts else ": nothing billable")
                   + f" → {amount} {card.currency}")
    return CostLine(resource, quantity, free, billable, amount, card.currency, card.plan_id, card.version, description)


def unit_price_at(card: RateCardView, resource: str, quantity: Decimal) -> Decimal:
    """The marginal price of ONE more unit once ``quantity`` units of the period are used (0 inside
    the allowance or for an unpriced resource): what the anomaly detection multiplies an excess by to
    estimate its cost. For an exact figure over a range use ``cost(entry, b) - cost(entry, a)``."""
    entry = card.prices.get(resource)
    if entry is None or quantity < entry.free:
        return ZERO
    with money_context():
        for low, high, price in entry.bands():
            if high is None or quantity < high:
                return price / entry.per
    return ZERO  # unreachable: the last band has no end


def total(lines: Iterable[CostLine]) -> Decimal:
    """A bill's total: the sum of its rounded lines (never a rounding of the exact sum)."""
    with money_context():
        return sum((line.amount for line in lines), ZERO)


def _segments(entry: PriceEntry, quantity: Decimal) -> list[tuple[Decimal, Decimal, Decimal]]:
    """(billable units, unit price, exact amount) per band the billable units [free, quantity) cross."""
    out = []
    with money_context():
        for low, high, price in entry.bands():
            start = max(low, entry.free)
            end = quantity if high is None else min(high, quantity)
            if end > start:
                units = end - start
                out.append((units, price, units * price / entry.per))
    return out


