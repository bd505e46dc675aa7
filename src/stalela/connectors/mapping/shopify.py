"""Shopify's REST order (Admin API 2025-01; /work/notes/platform_protocol.md) as a neutral order.

Prices are tax-inclusive when the shop says ``taxes_included``; otherwise Shopify adds the tax per
line (``tax_lines[].price``), which the jurisdiction recomputes per group: those lines count in the
rounding rule. Discounts come per line already (``discount_allocations``, a code or an automatic
discount spread by Shopify), shipping discounts per shipping line. The buyer's tax id has no standard
field on B2C orders: it is the note attribute ``tax_id`` (shopify.dev, "Order" resource).
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from stalela.connectors.mapping.model import GOODS, SHIPPING, Buyer, Line, Order, OrderState
from stalela.connectors.mapping.values import amount, joined, money, order_id, quantity, rfc3339_utc, text
from stalela.kit.money import ZERO, money_context, multiply_money

PLATFORM = "shopify"
DESCRIPTION_MAX = 200


def key(order: dict[str, Any]) -> str:
    return order_id(order)


def version(order: dict[str, Any]) -> str:
    return rfc3339_utc(order.get("updated_at"), "updated_at")


def state(order: dict[str, Any]) -> OrderState:
    status = order.get("financial_status")
    if status == "refunded":
        return "refunded"
    if status == "partially_refunded":
        return "partially_refunded"
    # voided: the authorisation was released, nothing was ever captured.
    if status == "voided" or order.get("cancelled_at"):
        return "cancelled"
    if status == "paid":
        return "paid"
    return "unpaid"  # pending, authorized, partially_paid


def read(order: dict[str, Any], billing_info: dict[str, Any] | None = None) -> Order:
    lines = [*_items(order), *_shipping(order)]
    total_tax = money(order.get("total_tax"), "total_tax", default=ZERO)
    charged_tax = total_tax != 0
    included = bool(order.get("taxes_included")) or not charged_tax
    return Order(
        platform=PLATFORM,
        key=key(order),
        currency=text(order.get("currency")) or "",
        taxes_included=included,
        lines=tuple(lines),
        buyer=_buyer(order),
        total=money(order.get("total_price"), "total_price"),
        # Shopify rounds each line's tax; on an inclusive shop the tax is inside the price and the
        # line amounts add up to total_price exactly.
        rounding_lines=0 if included else sum(1 for line in lines if line.tax_rate),
    )


def _items(order: dict[str, Any]) -> list[Line]:
    lines = []
    for i, item in enumerate(order.get("line_items") or []):
        at = f"line_items[{i}]"
        count = quantity(item.get("quantity"), f"{at}.quantity")
        if count == 0:  # nothing sold on this line
            continue
        price = money(item.get("price"), f"{at}.price")
        lines.append(Line(
            description=text(item.get("title"), DESCRIPTION_MAX) or text(item.get("name"), DESCRIPTION_MAX) or "",
            sku=text(item.get("sku")),
            quantity=count,
            subtotal=multiply_money(count, price),
            discount=_discount(item, at),
            tax_rate=_rate(item, at),
            kind=GOODS,
        ))
    return lines


def _shipping(order: dict[str, Any]) -> list[Line]:
    lines = []
    for j, ship in enumerate(order.get("shipping_lines") or []):
        at = f"shipping_lines[{j}]"
        price = money(ship.get("price"), f"{at}.price")
        if ship.get("discounted_price") is not None:
            with money_context():
                discount = price - money(ship.get("discounted_price"), f"{at}.discounted_price")
        else:
            discount = _discount(ship, at)
        if price == discount:  # free shipping, or made free by a discount: nothing to invoice
            continue
        lines.append(Line(
            description=text(ship.get("title"), DESCRIPTION_MAX) or "Shipping",
            sku=None,  # a shipping line's code names the rate (often "standard"), not what was sold
            quantity=Decimal(1),
            subtotal=price,
            discount=discount,
            tax_rate=_rate(ship, at),
            kind=SHIPPING,
        ))
    return lines


def _discount(item: dict[str, Any], at: str) -> Decimal:
    allocations = item.get("discount_allocations")
    if allocations:
        with money_context():
            return sum((money(a.get("amount"), f"{at}.discount_allocations[{k}].amount")
                        for k, a in enumerate(allocations)), ZERO)
    return money(item.get("total_discount"), f"{at}.total_discount", default=ZERO)


def _rate(item: dict[str, Any], at: str) -> Decimal | None:
    if item.get("taxable") is False:
        return Decimal(0)
    tax_lines = item.get("tax_lines") or []
    if not tax_lines:
        return None
    # Several tax lines on one item (a federal and a provincial tax) add up to one rate, which must
    # then be one of the jurisdiction's.
    with money_context():
        return sum((amount(t.get("rate"), f"{at}.tax_lines[{k}].rate") for k, t in enumerate(tax_lines)),
                   Decimal(0))


def _buyer(order: dict[str, Any]) -> Buyer:
    attributes = {text(a.get("name"), 100) or "": a.get("value") for a in order.get("note_attributes") or []
                  if isinstance(a, dict)}
    tax_id = text(attributes.get("tax_id"))
    billing = order.get("billing_address") or {}
    customer = order.get("customer") or {}
    return Buyer(
        name=text(billing.get("name"), 200) or text(joined(customer.get("first_name"), customer.get("last_name")), 200),
        company=text(billing.get("company"), 200),
        id_type="TAX_ID" if tax_id else None,
        id_number=tax_id,
        email=text(order.get("email")) or text(customer.get("email")) or text(order.get("contact_email")),
        address=text(joined(billing.get("address1"), billing.get("city"), billing.get("zip"),
                            billing.get("country_code"), sep=", "), 500),
        reference=f"{PLATFORM}:customer:{customer['id']}" if customer.get("id") is not None else None,
    )
