"""Tienda Nube's order (API 2025-03, tiendanube.github.io/api-documentation/resources/order) as a
neutral order.

Prices include IVA. The order's ``discount`` (coupon, payment-method and promotion discounts
together) is one amount for the whole order: it is shared over the product lines in proportion to
their amounts (values.allocate, to the cent). ``shipping_cost_customer`` is what the buyer paid for
shipping: a shipping line. The buyer's document is ``contact_identification`` (DNI or CUIT in
Argentina, CPF/CNPJ in Brazil), with no kind given.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from stalela.connectors.mapping.model import GOODS, SHIPPING, Buyer, Line, Order, OrderState
from stalela.connectors.mapping.values import (
    order_id,
    allocate,
    joined,
    money,
    quantity,
    rfc3339_utc,
    text,
)
from stalela.kit.money import ZERO, multiply_money

PLATFORM = "tiendanube"
DESCRIPTION_MAX = 200


def key(order: dict[str, Any]) -> str:
    # ``id``, not ``number`` (the number the shop shows, from 100, is not unique across stores).
    return order_id(order)


def version(order: dict[str, Any]) -> str:
    return rfc3339_utc(order.get("updated_at"), "updated_at")


def state(order: dict[str, Any]) -> OrderState:
    payment = order.get("payment_status")
    if payment == "refunded":
        return "refunded"
    if payment == "partially_refunded":
        return "partially_refunded"
    if payment == "voided" or order.get("status") == "cancelled":
        return "cancelled"
    if payment == "paid":
        return "paid"
    return "unpaid"  # pending, authorized, abandoned


def read(order: dict[str, Any], billing_info: dict[str, Any] | None = None) -> Order:
    products = _products(order)
    discount = money(order.get("discount"), "discount", default=ZERO)
    shares = allocate(discount, [line.subtotal for line in products])
    lines = [Line(description=p.description, sku=p.sku, quantity=p.quantity, subtotal=p.subtotal,
                  discount=share, tax_rate=None, kind=GOODS) for p, share in zip(products, shares)]
    shipping = money(order.get("shipping_cost_customer"), "shipping_cost_customer", default=ZERO)
    if shipping:
        lines.append(Line(description=text(order.get("shipping_option"), DESCRIPTION_MAX) or "Envío",
                          sku=None, quantity=Decimal(1), subtotal=shipping, kind=SHIPPING))
    return Order(
        platform=PLATFORM,
        key=key(order),
        currency=text(order.get("currency")) or "",
        taxes_included=True,
        lines=tuple(lines),
        buyer=_buyer(order),
        total=money(order.get("total"), "total"),
    )


def _products(order: dict[str, Any]) -> list[Line]:
    lines = []
    for i, product in enumerate(order.get("products") or []):
        at = f"products[{i}]"
        count = quantity(product.get("quantity"), f"{at}.quantity")
        if count == 0:
            continue
        price = money(product.get("price"), f"{at}.price")
        lines.append(Line(
            description=text(product.get("name"), DESCRIPTION_MAX) or "",
            sku=text(product.get("sku")),
            quantity=count,
            subtotal=multiply_money(count, price),
        ))
    return lines


def _buyer(order: dict[str, Any]) -> Buyer:
    customer = order.get("customer") or {}
    document = text(order.get("contact_identification")) or text(customer.get("identification"))
    return Buyer(
        name=text(order.get("contact_name"), 200) or text(order.get("billing_name"), 200)
        or text(customer.get("name"), 200),
        id_type="TAX_ID" if document else None,
        id_number=document,
        email=text(order.get("contact_email")) or text(customer.get("email")),
        address=text(joined(joined(order.get("billing_address"), order.get("billing_number")),
                            order.get("billing_city"), order.get("billing_zipcode"), sep=", "), 500),
        reference=f"{PLATFORM}:customer:{customer['id']}" if customer.get("id") is not None else None,
    )
