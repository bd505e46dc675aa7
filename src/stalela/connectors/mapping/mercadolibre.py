"""Mercado Libre's order (``GET /orders/{id}``) and its buyer's fiscal data (``GET /orders/{id}/billing_info``
with ``x-version: 2``) as a neutral order.

Prices include IVA (developers.mercadolibre.com.ar, "Facturación"): ``unit_price`` is what the buyer
paid per unit, ``full_unit_price`` the price before the seller's discount, so the discount is their
difference. ``total_amount`` is the items' total; shipping paid to Mercado Envíos is Mercado Libre's
own service, invoiced by it, so it is not a line here. One invoice per pack (a cart of several orders
from one seller): `merge_pack` makes the pack's orders one order first.
"""
from __future__ import annotations

import unicodedata
from typing import Any

from stalela.connectors.mapping.model import GOODS, Buyer, Line, Order, OrderState
from stalela.connectors.mapping.values import Unmappable, joined, money, order_id, quantity, rfc3339_utc, text
from stalela.kit.money import ZERO, money_context, multiply_money

PLATFORM = "mercadolibre"
DESCRIPTION_MAX = 200

# billing_info's taxes.taxpayer_type.description (ids are not documented; the descriptions are what
# ARCA calls the conditions), lower-cased, without accents and a leading "iva ", to Stalela's names.
TAXPAYER_TYPES: dict[str, str] = {
    "responsable inscripto": "responsable_inscripto",
    "consumidor final": "consumidor_final",
    "monotributo": "monotributo",
    "responsable monotributo": "monotributo",
    "monotributista": "monotributo",
    "monotributista social": "monotributista_social",
    "exento": "exento",
    "sujeto exento": "exento",
    "no alcanzado": "no_alcanzado",
    "no categorizado": "no_categorizado",
    "sujeto no categorizado": "no_categorizado",
    "cliente del exterior": "cliente_exterior",
    "liberado": "iva_liberado",
}
_PAID_PAYMENTS = frozenset({"approved", "authorized"})
_REFUNDED_PAYMENTS = frozenset({"refunded", "charged_back"})


def key(order: dict[str, Any]) -> str:
    """The pack when there is one (the pack is what gets one fiscal document), else the order."""
    pack = order.get("pack_id")
    if pack is not None:
        return str(pack)
    return order_id(order)


def version(order: dict[str, Any]) -> str:
    for name in ("last_updated", "date_last_updated", "date_closed", "date_created"):
        if order.get(name):
            return rfc3339_utc(order[name], name)
    raise Unmappable("invalid_order", "the order has no last_updated")


def state(order: dict[str, Any]) -> OrderState:
    status = order.get("status")
    payments = [p for p in order.get("payments") or [] if isinstance(p, dict)]
    paid = [p for p in payments if p.get("status") in _PAID_PAYMENTS]
    refunded = [p for p in payments if p.get("status") in _REFUNDED_PAYMENTS]
    partly = [p for p in paid if money(p.get("transaction_amount_refunded"), "transaction_amount_refunded",
                                       default=ZERO) > 0]
    if status == "partially_refunded" or (refunded and paid) or partly:
        return "partially_refunded"
    if refunded:
        return "refunded"
    if status in ("cancelled", "pending_cancel", "invalid"):
        return "cancelled"
    if status == "paid":
        return "paid"
    return "unpaid"  # confirmed, payment_required, payment_in_process, partially_paid


def merge_pack(orders: list[dict[str, Any]]) -> dict[str, Any]:
    """The orders of one pack as one order (id and pack_id the pack's), for one invoice.

    An order of the pack cancelled without ever being charged is left out (the buyer dropped it from
    the cart); the pack is paid when every other order is. Items keep the orders' order (by id)."""
    if not orders:
        raise ValueError("merge_pack: no orders")
    packs = {o.get("pack_id") for o in orders}
    if len(packs) != 1 or None in packs:
        raise ValueError(f"merge_pack: the orders belong to packs {sorted(map(str, packs))}, not one")
    ordered = sorted(orders, key=lambda o: str(o.get("id")))
    kept = [o for o in ordered if not (o.get("status") == "cancelled" and not _charged(o))] or ordered
    statuses = {o.get("status") for o in kept}
    status = statuses.pop() if len(statuses) == 1 else next(o.get("status") for o in kept if o.get("status") != "paid")
    with money_context():
        merged = {
            **kept[0],
            "id": kept[0]["pack_id"],
            "status": status,
            "order_items": [item for o in kept for item in o.get("order_items") or []],
            "payments": [p for o in kept for p in o.get("payments") or []],
            "total_amount": sum((money(o.get("total_amount"), "total_amount") for o in kept), ZERO),
            "pack_orders": [o.get("id") for o in kept],
        }
    versions = [version(o) for o in ordered]
    merged["last_updated"] = max(versions)
    return merged


def _charged(order: dict[str, Any]) -> bool:
    return any(p.get("status") in _PAID_PAYMENTS | _REFUNDED_PAYMENTS for p in order.get("payments") or [])


def read(order: dict[str, Any], billing_info: dict[str, Any] | None = None) -> Order:
    return Order(
        platform=PLATFORM,
        key=key(order),
        currency=text(order.get("currency_id")) or "",
        taxes_included=True,
        lines=tuple(_items(order)),
        buyer=_buyer(order, billing_info),
        total=money(order.get("total_amount"), "total_amount"),
    )


def _items(order: dict[str, Any]) -> list[Line]:
    lines = []
    for i, entry in enumerate(order.get("order_items") or []):
        at = f"order_items[{i}]"
        item = entry.get("item") or {}
        count = quantity(entry.get("quantity"), f"{at}.quantity")
        if count == 0:
            continue
        paid = money(entry.get("unit_price"), f"{at}.unit_price")
        # full_unit_price is the list price; a higher unit_price (never seen) is read as no discount.
        full = max(money(entry.get("full_unit_price"), f"{at}.full_unit_price", default=paid), paid)
        with money_context():
            subtotal = multiply_money(count, full)
            discount = subtotal - multiply_money(count, paid)
        lines.append(Line(
            description=text(item.get("title"), DESCRIPTION_MAX) or "",
            sku=text(item.get("seller_sku")) or text(item.get("seller_custom_field")) or text(item.get("id")),
            quantity=count, subtotal=subtotal, discount=discount, tax_rate=None, kind=GOODS,
        ))
    return lines


def _billing(billing_info: dict[str, Any] | None) -> dict[str, Any]:
    """The ``billing_info`` object whether given whole (``{"buyer": {"billing_info": ...}}``, x-version 2),
    as its ``buyer`` member or as the inner object itself."""
    if not billing_info:
        return {}
    inner = billing_info.get("buyer", billing_info)
    inner = inner.get("billing_info", inner) if isinstance(inner, dict) else {}
    return inner if isinstance(inner, dict) else {}


def vat_condition(description: Any) -> str | None:
    """Stalela's IVA condition for a taxpayer type description; None when absent."""
    raw = text(description)
    if raw is None:
        return None
    folded = "".join(c for c in unicodedata.normalize("NFKD", raw.lower()) if not unicodedata.combining(c))
    folded = " ".join(folded.replace("-", " ").split())
    if folded.startswith("iva "):
        folded = folded[4:]
    condition = TAXPAYER_TYPES.get(folded)
    if condition is None:
        raise Unmappable("unknown_taxpayer_type", f"billing_info taxpayer type {raw!r} is not one the mapping knows")
    return condition


def _buyer(order: dict[str, Any], billing_info: dict[str, Any] | None) -> Buyer:
    info = _billing(billing_info)
    identification = info.get("identification") or {}
    kind = text(identification.get("type"))
    number = text(identification.get("number"))
    taxpayer = ((info.get("taxes") or {}).get("taxpayer_type") or {}).get("description")
    address = info.get("address") or {}
    street = joined(address.get("street_name"), address.get("street_number"))
    state_name = (address.get("state") or {}).get("name") if isinstance(address.get("state"), dict) else None
    buyer = order.get("buyer") or {}
    customer = buyer.get("id")
    return Buyer(
        # Not the nickname: a user name is no name for an invoice.
        name=text(joined(info.get("name"), info.get("last_name")), 200),
        company=None,
        id_type=kind.upper() if kind and number else None,
        id_number=number if kind else None,
        vat_condition=vat_condition(taxpayer),
        address=text(joined(street, address.get("city_name"), address.get("zip_code"), state_name, sep=", "), 500),
        reference=f"{PLATFORM}:customer:{customer}" if customer is not None else None,
    )
