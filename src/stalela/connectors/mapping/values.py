"""Reading platform values (amounts as Decimal, texts, times), and the two ways an exact amount is laid
out on invoice lines.

Invoices have no discount field and no negative lines: a line is ``quantity x unit_price`` rounded to
the cent. So a discounted amount must be written as prices, and an order-level discount must be
shared out over lines, both without losing or inventing a cent (the totals check would park it).
"""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from stalela.kit.money import CENT, money_context, round_money


class FloatNotAllowed(TypeError):
    """A platform amount arrived as a float: the caller parsed the JSON without ``parse_float=Decimal``,
    so the value the platform meant (0.1 is not one tenth) is already lost. A caller's bug, never an
    order to park."""


class Unmappable(Exception):
    """Raised inside the mapping for an order it cannot turn into an invoice; `map_order` catches it
    and answers ``Parked(reason, detail)``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def amount(value: Any, field: str, *, default: Decimal | None = None) -> Decimal:
    """A platform number (Decimal, int or decimal string) as a Decimal; ``default`` when absent/empty.

    WooCommerce writes an empty string for "no tax", hence the empty-string default."""
    if isinstance(value, float):
        raise FloatNotAllowed(f"{field} is a float ({value!r}): parse the platform's JSON with "
                              "json.loads(text, parse_float=Decimal)")
    if value is None or (isinstance(value, str) and not value.strip()):
        if default is not None:
            return default
        raise Unmappable("invalid_order", f"{field} is missing")
    if isinstance(value, bool):
        raise Unmappable("invalid_order", f"{field} is not a number: {value!r}")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise Unmappable("invalid_order", f"{field} is not a number: {value!r}") from None
    else:
        raise Unmappable("invalid_order", f"{field} is not a number: {value!r}")
    if not number.is_finite():
        raise Unmappable("invalid_order", f"{field} is not a finite number: {value!r}")
    return number


def money(value: Any, field: str, *, default: Decimal | None = None) -> Decimal:
    """An amount of money: at most 2 decimals (every platform here prices in cents)."""
    number = amount(value, field, default=default)
    if number != round_money(number):
        raise Unmappable("invalid_order", f"{field} has more than 2 decimals: {value!r}")
    return number


def quantity(value: Any, field: str) -> Decimal:
    number = amount(value, field)
    if number < 0:
        raise Unmappable("invalid_order", f"{field} is negative: {value!r}")
    return number


def percent(value: Any, field: str) -> Decimal:
    """WooCommerce's ``rate_percent`` (16, 10.5) as a rate (0.16, 0.105)."""
    with money_context():
        return amount(value, field) / 100


def cents(value: Decimal) -> int:
    return int((value / CENT).to_integral_value())


def from_cents(count: int) -> Decimal:
    return (Decimal(count) * CENT).quantize(CENT)


def allocate(total: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """``total`` split over ``weights`` in proportion, to the cent, summing to ``total`` exactly.

    Largest remainder: every share is first rounded down, then the cents left go one each to the
    largest remainders, ties to the earlier weight, so the same order always gets the same split.
    With all weights zero, equal shares."""
    if not weights:
        if total:
            raise Unmappable("invalid_order", f"a discount of {total} has no line to apply to")
        return []
    count = cents(total)
    sign = -1 if count < 0 else 1
    count = abs(count)
    scale = [cents(w) for w in weights]
    if sum(scale) <= 0:
        scale = [1] * len(weights)
    whole = sum(scale)
    shares = [count * s // whole for s in scale]
    remainders = [(-(count * s % whole), i) for i, s in enumerate(scale)]
    for _, i in sorted(remainders)[: count - sum(shares)]:
        shares[i] += 1
    return [from_cents(sign * s) for s in shares]


def split_amount(line_quantity: Decimal, line_amount: Decimal) -> list[tuple[Decimal, Decimal]]:
    """``(quantity, unit_price)`` pairs whose rounded products add up to ``line_amount`` exactly.

    One pair when the amount divides evenly by the quantity. Otherwise, for a whole quantity n, the
    amount is n units of u cents plus r leftover cents: r units at u + 0.01 and n - r at u (two lines
    with the same description). A fractional quantity (no platform here sends one) becomes one unit
    priced at the whole amount."""
    if line_quantity <= 0:
        raise Unmappable("invalid_order", f"quantity {line_quantity} is not positive")
    if line_amount < 0:
        raise Unmappable("invalid_order", f"a line comes to {line_amount} after its discounts")
    with money_context():
        unit = line_amount / line_quantity
    if unit == round_money(unit):
        return [(line_quantity, round_money(unit))]
    if line_quantity != line_quantity.to_integral_value():
        return [(Decimal(1), line_amount)]
    units = int(line_quantity)
    base, leftover = divmod(cents(line_amount), units)
    return [(Decimal(units - leftover), from_cents(base)), (Decimal(leftover), from_cents(base + 1))]



def text(value: Any, limit: int | None = None) -> str | None:
    """A platform string, stripped; None when absent or blank; cut to ``limit`` characters (the invoice's
    bound: a 300-character product title still names the product in its first 200)."""
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    stripped = str(value).strip()
    if not stripped:
        return None
    return stripped[:limit].rstrip() if limit is not None else stripped


def joined(*parts: Any, sep: str = " ") -> str | None:
    present = [t for t in (text(p) for p in parts) if t]
    return sep.join(present) if present else None


def rfc3339_utc(value: Any, field: str) -> str:
    """A platform timestamp as RFC 3339 UTC with microseconds, ``2026-11-20T14:15:00.000000Z``: one
    fixed width, so two versions of an order compare as strings. A time without an offset is UTC
    (WooCommerce's ``*_gmt`` fields)."""
    raw = text(value)
    if raw is None:
        raise Unmappable("invalid_order", f"{field} is missing")
    try:
        moment = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError:
        raise Unmappable("invalid_order", f"{field} is not an ISO 8601 time: {raw!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def order_id(order: dict[str, Any]) -> str:
    if order.get("id") is None:
        raise Unmappable("invalid_order", "the order has no id")
    return str(order["id"])
