"""WooCommerce's order (REST API v3, woocommerce.github.io/woocommerce-rest-api-docs/#order-properties) as a
neutral order.

WooCommerce states every line amount before tax, whatever the shop's ``prices_include_tax``: a
line's ``subtotal`` is before discounts, ``total`` after (coupons are already spread over the lines;
``coupon_lines`` only name them), each with its tax beside it (``subtotal_tax``, ``total_tax``). So a
tax-inclusive shop's line is ``total + total_tax``, and a tax-exclusive shop's is ``total`` with the
jurisdiction adding its VAT; either way WooCommerce rounded each line's tax, so every taxed line counts
in the rounding rule. Shipping and fee lines are read the same way; a negative fee (WooCommerce's way of
a manual discount) is shared over the goods lines like Tienda Nube's discount. The buyer's VAT number
is order meta, as VAT plugins store it: ``_billing_vat`` or ``vat_number``.
"""
from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from stalela.connectors.mapping.model import FEE, GOODS, SHIPPING, Buyer, Line, LineKind, Order, OrderState
from stalela.connectors.mapping.values import (
    Unmappable,
    order_id,
    allocate,
    joined,
    money,
    percent,
    quantity,
    rfc3339_utc,
    text,
)
from stalela.kit.money import ZERO, money_context

PLATFORM = "woocommerce"
DESCRIPTION_MAX = 200
VAT_META_KEYS = ("_billing_vat", "vat_number")
_PAID = frozenset({"processing", "completed"})


def key(order: dict[str, Any]) -> str:
    return order_id(order)


def version(order: dict[str, Any]) -> str:
    for name in ("date_modified_gmt", "date_created_gmt"):
        if order.get(name):
            return rfc3339_utc(order[name], name)
    raise Unmappable("invalid_order", "the order has no date_modified_gmt")


def state(order: dict[str, Any]) -> OrderState:
    status = order.get("status")
    if status == "refunded":
        return "refunded"
    if status in ("cancelled", "trash"):
        return "cancelled"
    if status not in _PAID:
        return "unpaid"  # pending, on-hold, failed (the buyer may still pay), checkout-draft
    with money_context():
        refunded = sum((abs(money(r.get("total"), "refunds[].total")) for r in order.get("refunds") or []), ZERO)
    if refunded == 0:
        return "paid"
    return "refunded" if refunded >= money(order.get("total"), "total") else "partially_refunded"


def read(order: dict[str, Any], billing_info: dict[str, Any] | None = None) -> Order:
    rates = {str(t.get("rate_id")): percent(t.get("rate_percent"), f"tax_lines[{k}].rate_percent")
             for k, t in enumerate(order.get("tax_lines") or [])}
    charged_tax = money(order.get("total_tax"), "total_tax", default=ZERO) != 0
    included = bool(order.get("prices_include_tax")) or not charged_tax
    reader = _Reader(rates, included)
    goods = [reader.line(item, f"line_items[{i}]", GOODS, item.get("name"))
             for i, item in enumerate(order.get("line_items") or [])]
    goods = [line for line in goods if line.quantity != 0]
    shipping = [reader.line(ship, f"shipping_lines[{j}]", SHIPPING, ship.get("method_title") or "Shipping")
                for j, ship in enumerate(order.get("shipping_lines") or [])]
    fees = [reader.line(fee, f"fee_lines[{k}]", FEE, fee.get("name") or "Fee")
            for k, fee in enumerate(order.get("fee_lines") or [])]
    with money_context():
        negative = -sum((fee.amount for fee in fees if fee.amount < 0), ZERO)
    shares = allocate(negative, [line.amount for line in goods])
    goods = [_with_discount(line, share) for line, share in zip(goods, shares)]
    lines = [*goods, *(s for s in shipping if s.amount != 0), *(f for f in fees if f.amount > 0)]
    return Order(
        platform=PLATFORM,
        key=key(order),
        currency=text(order.get("currency")) or "",
        taxes_included=included,
        lines=tuple(lines),
        buyer=_buyer(order),
        total=money(order.get("total"), "total"),
        rounding_lines=sum(1 for line in lines if line.tax_rate),
    )


class _Reader:
    def __init__(self, rates: dict[str, Decimal], included: bool) -> None:
        self.rates = rates
        self.included = included

    def line(self, item: dict[str, Any], at: str, kind: LineKind, name: Any) -> Line:
        total = money(item.get("total"), f"{at}.total")
        total_tax = money(item.get("total_tax"), f"{at}.total_tax", default=ZERO)
        # Shipping and fee lines have no subtotal: nothing is discounted on them.
        subtotal = money(item.get("subtotal"), f"{at}.subtotal", default=total)
        subtotal_tax = money(item.get("subtotal_tax"), f"{at}.subtotal_tax", default=total_tax)
        with money_context():
            before, after = (subtotal + subtotal_tax, total + total_tax) if self.included else (subtotal, total)
        count = quantity(item.get("quantity"), f"{at}.quantity") if kind == GOODS else Decimal(1)
        return Line(
            description=text(name, DESCRIPTION_MAX) or "",
            sku=text(item.get("sku")),
            quantity=count,
            subtotal=before,
            discount=before - after,
            tax_rate=self.rate(item, at),
            kind=kind,
        )

    def rate(self, item: dict[str, Any], at: str) -> Decimal | None:
        if not self.rates:
            return None  # the shop charged no tax: the jurisdiction's default applies
        rate = Decimal(0)
        for k, tax in enumerate(item.get("taxes") or []):
            charged = money(tax.get("total"), f"{at}.taxes[{k}].total", default=ZERO) \
                or money(tax.get("subtotal"), f"{at}.taxes[{k}].subtotal", default=ZERO)
            if not charged:
                continue
            found = self.rates.get(str(tax.get("id")))
            if found is None:
                raise Unmappable("invalid_order", f"{at}.taxes[{k}] names tax rate {tax.get('id')!r}, "
                                                  "which is not in the order's tax_lines")
            rate += found
        return rate


def _with_discount(line: Line, share: Decimal) -> Line:
    if not share:
        return line
    with money_context():
        return replace(line, discount=line.discount + share)


def _buyer(order: dict[str, Any]) -> Buyer:
    billing = order.get("billing") or {}
    meta = {m.get("key"): m.get("value") for m in order.get("meta_data") or [] if isinstance(m, dict)}
    vat = next((text(meta[k]) for k in VAT_META_KEYS if text(meta.get(k))), None)
    customer = order.get("customer_id")
    return Buyer(
        name=text(joined(billing.get("first_name"), billing.get("last_name")), 200),
        company=text(billing.get("company"), 200),
        id_type="TAX_ID" if vat else None,
        id_number=vat,
        email=text(billing.get("email")),
        address=text(joined(billing.get("address_1"), billing.get("city"), billing.get("postcode"),
                            billing.get("country"), sep=", "), 500),
        # 0 is a guest checkout: no customer account to name.
        reference=f"{PLATFORM}:customer:{customer}" if customer else None,
    )
