"""Marketplace orders as Stalela invoice request bodies, per platform and jurisdiction, with the totals
check that parks an order rather than seal it wrongly (docs/connectors.md, "Mapping orders to invoices").

Pure: no I/O, no clock, no database. The same order, billing info and options always give the same
answer, so a replayed or re-fetched order maps to the same body. Orders are dicts parsed with
``json.loads(text, parse_float=Decimal)``; a float anywhere raises `FloatNotAllowed`.

The readers (`shopify`, `mercadolibre`, `tiendanube`, `woocommerce`) turn a platform's order into the
neutral `model.Order`; the writers (`drc`, `ar`) turn that into a body; `totals` computes the body
with the jurisdiction's own engine and compares it with the platform's total.
"""
from __future__ import annotations

from typing import Any

from stalela.connectors.mapping import ar, drc, totals
from stalela.connectors.mapping.credit_notes import credit_note_for
from stalela.connectors.mapping.layout import Written
from stalela.connectors.mapping.mercadolibre import merge_pack
from stalela.connectors.mapping.model import REASONS, SKIP_REASONS, Mapped, OrderState, Parked, Result, Skipped
from stalela.connectors.mapping.options import ExchangeRate, MappingOptions
from stalela.connectors.mapping.platforms import PLATFORMS, reader
from stalela.connectors.mapping.values import FloatNotAllowed, Unmappable
from stalela.errors import FiscalRuleViolation

__all__ = [
    "JURISDICTIONS", "PLATFORMS", "REASONS", "SKIP_REASONS", "ExchangeRate", "FloatNotAllowed", "Mapped",
    "MappingOptions", "OrderState", "Parked", "Result", "Skipped", "credit_note_for", "map_order", "merge_pack",
    "order_key", "order_state", "order_version",
]

JURISDICTIONS = frozenset({drc.CODE, ar.CODE})


def map_order(platform: str, order: dict[str, Any], *, jurisdiction: str, outlet_id: str,
              options: MappingOptions, billing_info: dict[str, Any] | None = None) -> Result:
    """The invoice body for a paid order (Mapped), or why there is none: Skipped for an order not to
    invoice (unpaid, refunded, cancelled), Parked for one a person must look at.

    ``billing_info``: Mercado Libre's ``GET /orders/{id}/billing_info`` answer (x-version 2); for a pack,
    pass ``merge_pack(orders)`` as the order. Raises ValueError for an unknown platform or jurisdiction
    or a bad option (the caller's error), FloatNotAllowed for a float amount."""
    platform_reader = reader(platform)
    writer = _writer(jurisdiction)
    try:
        state = platform_reader.state(order)
        if state == "partially_refunded":
            return Parked("partial_refund", f"order {platform_reader.key(order)} is partly refunded and has no "
                                            "invoice yet: invoice what was kept by hand")
        if state != "paid":
            return Skipped(state, f"order {platform_reader.key(order)} is {state}")
        neutral = platform_reader.read(order, billing_info)
        written: Written = writer.write(neutral, outlet_id=outlet_id, options=options)
        converted = written.converted_from is not None
        computed = totals.compute(written.body, jurisdiction, options.issuer_vat_condition)
        body = written.body
        if jurisdiction == drc.CODE and options.payment_method is not None:
            body = drc.with_payments(body, str(computed.totals.payable), options)
            computed = totals.compute(body, jurisdiction, options.issuer_vat_condition)
    except Unmappable as exc:
        return Parked(exc.reason, exc.detail)
    except FiscalRuleViolation as exc:
        return totals.refused(exc)
    allowed = totals.allowed_difference(neutral, options.tolerance, converted)
    return totals.compare(body, totals.our_total(computed, converted), neutral.total, allowed)


def order_state(platform: str, order: dict[str, Any]) -> OrderState:
    """paid, unpaid, refunded, partially_refunded or cancelled (voided counts as cancelled)."""
    return _read(lambda: reader(platform).state(order))


def order_version(platform: str, order: dict[str, Any]) -> str:
    """The platform's last-modified time (Shopify and Tienda Nube ``updated_at``, Mercado Libre
    ``last_updated``, WooCommerce ``date_modified_gmt``) as RFC 3339 UTC with microseconds
    (``2026-11-20T14:15:00.000000Z``): later versions compare greater as strings."""
    return _read(lambda: reader(platform).version(order))


def order_key(platform: str, order: dict[str, Any]) -> str:
    """What makes one invoice: the order id, or on Mercado Libre the pack id when there is one."""
    return _read(lambda: reader(platform).key(order))


def _read(call: Any) -> Any:
    # Outside map_order an unreadable order is the caller's to handle: a ValueError, not a Parked.
    try:
        return call()
    except Unmappable as exc:
        raise ValueError(exc.detail) from None


def _writer(jurisdiction: str) -> Any:
    writers = {drc.CODE: drc, ar.CODE: ar}
    try:
        return writers[jurisdiction]
    except KeyError:
        raise ValueError(f"unknown jurisdiction {jurisdiction!r}; known: {', '.join(sorted(writers))}") from None
