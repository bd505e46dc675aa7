"""The credit note for an order refunded (or cancelled) after its invoice was sealed.

A sealed invoice is never changed: a refund is a credit note citing it (docs/api.md, "Credit note").
A full refund credits the invoice line for line, from the sealed document itself rather than from the
order again, so the credit note equals the invoice exactly even if the order was edited since. A
partial refund is parked: which lines a platform's refund covers (WooCommerce gives only an amount)
is a person's call.
"""
from __future__ import annotations

from typing import Any

from stalela.connectors.mapping import ar, drc, totals
from stalela.connectors.mapping.layout import reference
from stalela.connectors.mapping.model import Parked, Result, Skipped
from stalela.connectors.mapping.options import MappingOptions
from stalela.connectors.mapping.platforms import reader
from stalela.connectors.mapping.values import Unmappable, amount
from stalela.errors import FiscalRuleViolation
from stalela.fiscal.core.invoice import OriginalInvoice
from stalela.fiscal.jurisdictions import ar_data

REFUND_SUFFIX = ":refund"
_DRC_BUYER = ("type", "name", "tax_id", "exemption_ref")
_AR_BUYER = ("doc_type", "doc_number", "name", "vat_condition")


def credit_note_for(original_invoice: dict[str, Any], platform: str, order: dict[str, Any], *,
                    jurisdiction: str, options: MappingOptions) -> Result:
    """``original_invoice``: the sealed invoice as ``GET /v1/invoices/{id}`` returns it (its id, outlet,
    fiscal number, type, price mode, currency, buyer, lines, totals, and for Argentina its ``ar`` block).

    Mapped(kind="credit_note") for a refunded or cancelled order; Parked("partial_refund") for a partial
    refund; Skipped("not_refunded") when the order is still paid (nothing to credit)."""
    platform_reader = reader(platform)
    try:
        state = platform_reader.state(order)
        key = platform_reader.key(order)
    except Unmappable as exc:
        return Parked(exc.reason, exc.detail)
    if state == "partially_refunded":
        return Parked("partial_refund", f"order {key} was partly refunded after invoice "
                                        f"{original_invoice.get('fiscal_number')} was sealed: credit the refunded "
                                        "lines by hand")
    if state not in ("refunded", "cancelled"):
        return Skipped("not_refunded", f"order {key} is {state}: nothing to credit")
    try:
        body, original = _body(original_invoice, jurisdiction, reference(platform, key, options, REFUND_SUFFIX),
                               options)
        computed = totals.compute(body, jurisdiction, options.issuer_vat_condition, original)
    except Unmappable as exc:
        return Parked(exc.reason, exc.detail)
    except FiscalRuleViolation as exc:
        return totals.refused(exc)
    return totals.compare(body, computed.totals.total, original.total, options.tolerance, kind="credit_note")


def _body(doc: dict[str, Any], jurisdiction: str, ref: str,
          options: MappingOptions) -> tuple[dict[str, Any], OriginalInvoice]:
    original_total = amount((doc.get("totals") or {}).get("total"), "original_invoice.totals.total")
    body: dict[str, Any] = {
        "outlet_id": doc.get("outlet_id"),
        "price_mode": doc.get("price_mode"),
        "currency": doc.get("currency"),
        "reference": ref,
    }
    if jurisdiction == drc.CODE:
        credit_type = drc.CREDIT_NOTE_TYPE.get(doc.get("type"))  # type: ignore[arg-type]
        cited = doc.get("fiscal_number")
        body.update(type=credit_type, nature=options.credit_note_nature, original=cited)
        body["lines"] = [_line(line, ("item_type", "tax_group")) for line in doc.get("lines") or []]
        buyer = _buyer(doc.get("buyer"), _DRC_BUYER)
        exchange = doc.get("exchange")
        if exchange:
            body["exchange"] = {k: exchange[k] for k in ("currency", "rate", "date")}
        extra = None
    elif jurisdiction == ar.CODE:
        credit_type = ar.CREDIT_NOTE_TYPE.get(doc.get("type"))  # type: ignore[arg-type]
        cited = doc.get("id")
        body.update(type=credit_type, original=cited)
        body["lines"] = [_line(line, ("vat_rate",)) for line in doc.get("lines") or []]
        buyer = _buyer(doc.get("buyer"), _AR_BUYER)
        extra = doc.get("ar") or {}
        if doc.get("currency") != ar_data.CURRENCY:
            body["exchange_rate"] = extra.get("exchange_rate")
    else:
        raise ValueError(f"unknown jurisdiction {jurisdiction!r}")
    if credit_type is None or not isinstance(cited, str):
        raise Unmappable("invalid_order", f"the original invoice (type {doc.get('type')!r}) cannot be credited")
    if buyer:
        body["buyer"] = buyer
    original = OriginalInvoice(fiscal_number=cited, type=doc["type"], total=original_total, extra=extra)
    return body, original


def _line(line: dict[str, Any], codes: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {"description": line.get("description")}
    if line.get("code") is not None:
        out["code"] = line["code"]
    for name in codes:
        # A C receipt's lines are sealed in the engine's own group sin_iva, which no request may send.
        if line.get(name) is not None and line.get(name) != ar_data.CLASS_C_RATE:
            out[name] = line[name]
    out["quantity"] = line.get("quantity")
    out["unit_price"] = line.get("unit_price")
    return out


def _buyer(buyer: dict[str, Any] | None, fields: tuple[str, ...]) -> dict[str, Any] | None:
    if not buyer:
        return None
    kept = {name: buyer[name] for name in fields if buyer.get(name) is not None}
    return kept or None

