"""What the two jurisdiction writers share: the invoice lines of a neutral order, the currency decision,
the reference, and the buyer's contact fields as the API bounds them."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from stalela.connectors.mapping.model import Buyer, Line, Order
from stalela.connectors.mapping.options import ExchangeRate, MappingOptions
from stalela.connectors.mapping.values import Unmappable, split_amount, text
from stalela.kit.money import decimal_str, money_str, multiply_money

# The API's bounds (fiscal.invoices.schemas, the jurisdictions' LIMITS): a body outside them would be
# refused with a 422 after the connector believed the order mapped.
DESCRIPTION_MAX = 200
CODE_MAX = 64
REFERENCE_MAX = 100
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+$")
EMAIL_MAX = 254
ADDRESS_MAX = 500


@dataclass(frozen=True)
class Written:
    """A jurisdiction writer's answer: the body, and the foreign currency its amounts were converted
    from (the DRC converts a USD order to CDF), if any."""

    body: dict[str, Any]
    converted_from: str | None = None


@dataclass(frozen=True)
class Currency:
    """The invoice currency decision for an order: ``foreign`` is the order's currency when it is not
    the jurisdiction's own, with the exchange rate to use."""

    foreign: str | None
    rate: ExchangeRate | None


def currency(order: Order, options: MappingOptions, *, own: str, foreign_allowed: frozenset[str]) -> Currency:
    accepted = options.currencies if options.currencies is not None else {own, *options.exchange_rates}
    if order.currency not in accepted:
        raise Unmappable("unsupported_currency",
                         f"the order is in {order.currency or 'no currency'}; the connection invoices "
                         f"{', '.join(sorted(accepted))}")
    if order.currency == own:
        return Currency(None, None)
    if order.currency not in foreign_allowed:
        raise Unmappable("unsupported_currency",
                         f"the order is in {order.currency}; invoices here are in {own}"
                         + (f" or {', '.join(sorted(foreign_allowed))}" if foreign_allowed else ""))
    rate = options.exchange_rates.get(order.currency)
    if rate is None:
        raise Unmappable("unsupported_currency",
                         f"the order is in {order.currency} and no exchange rate to {own} was given")
    return Currency(order.currency, rate)


def invoice_lines(order: Order, codes: Callable[[Line], dict[str, str]],
                  convert: Decimal | None = None) -> list[dict[str, Any]]:
    """The invoice lines of ``order``: each neutral line's amount after discounts, laid out exactly
    (values.split_amount), converted at ``convert`` first when given, with its tax codes."""
    if not order.lines:
        raise Unmappable("empty_order", "the order has no line with a quantity")
    return [line for source in order.lines for line in _lines(source, codes(source), convert)]


def _lines(source: Line, codes: dict[str, str], convert: Decimal | None) -> Iterator[dict[str, Any]]:
    amount = source.amount if convert is None else multiply_money(source.amount, convert)
    description = text(source.description, DESCRIPTION_MAX) or text(source.sku, DESCRIPTION_MAX) or "Item"
    code = text(source.sku, CODE_MAX)
    for count, unit_price in split_amount(source.quantity, amount):
        line: dict[str, Any] = {"description": description}
        if code is not None:
            line["code"] = code
        line.update(codes)
        line["quantity"] = decimal_str(count)
        line["unit_price"] = money_str(unit_price)
        yield line


def tax_code(line: Line, *, rates: dict[Decimal, str], default: str, untaxed: str, jurisdiction: str) -> str:
    """The jurisdiction's code (DRC tax group, AR vat_rate) for the rate the platform taxed ``line`` at:
    ``default`` when it gave none, ``untaxed`` for 0, else the code of exactly that rate. Another rate
    is not approximated: it means the shop's tax settings are not this jurisdiction's."""
    if line.tax_rate is None:
        return default
    if line.tax_rate == 0:
        return untaxed
    code = rates.get(line.tax_rate)
    if code is None:
        # "16 % (B)" for the DRC's groups; Argentina's codes are the percentages themselves.
        known = ", ".join(f"{decimal_str(r * 100)} %" + ("" if c == decimal_str(r * 100) else f" ({c})")
                          for r, c in sorted(rates.items()))
        raise Unmappable("unmappable_tax", f"{line.description!r} is taxed at {decimal_str(line.tax_rate * 100)} %; "
                                           f"{jurisdiction} rates are {known}")
    return code


def reference(platform: str, order_key: str, options: MappingOptions, suffix: str = "") -> str:
    """The invoice's ``reference``: unique per outlet, so the API itself refuses a second invoice (or a
    second credit note, ``suffix`` ":refund") for the same order."""
    prefix = options.reference_prefix if options.reference_prefix is not None else f"{platform}:"
    value = f"{prefix}{order_key}{suffix}"
    if len(value) > REFERENCE_MAX:
        raise ValueError(f"the reference {value!r} is longer than {REFERENCE_MAX}: shorten reference_prefix")
    return value


def contacts(buyer: Buyer) -> dict[str, str]:
    """The buyer's email, address and customer reference, each only when the API would take it."""
    out: dict[str, str] = {}
    if buyer.email and len(buyer.email) <= EMAIL_MAX and EMAIL_PATTERN.match(buyer.email):
        out["email"] = buyer.email
    address = text(buyer.address, ADDRESS_MAX)
    if address:
        out["address"] = address
    if buyer.reference and len(buyer.reference) <= REFERENCE_MAX:
        out["reference"] = buyer.reference
    return out
