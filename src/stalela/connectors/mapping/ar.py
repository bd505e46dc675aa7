"""A neutral order as an Argentine receipt body (docs/jurisdictions/ar.md).

- The receipt class follows RG 1415 from the issuer's IVA condition (the connection's
  ``issuer_vat_condition``, the tenant's) and the buyer's: a responsable inscripto issues a Factura A
  (``"1"``) to a buyer whose condition an A accepts (RI, monotributo) and a Factura B (``"6"``) to
  everyone else; a monotributista or exento issuer a Factura C (``"11"``).
- The buyer's condition is what Mercado Libre's ``billing_info`` states (``taxes.taxpayer_type``);
  otherwise a CUIT means the connection's ``cuit_vat_condition`` (responsable inscripto), and a DNI,
  a CUIL or nothing means consumidor final. A number whose kind the platform does not say (Tienda Nube,
  Shopify, WooCommerce) is a CUIT when it has 11 digits and a DNI when it has 7 or 8.
- ``price_mode`` ``gross`` when prices include IVA, ``net`` otherwise, on every class.
- IVA rate by the platform's rate (21, 10.5, 27, 5, 2.5 %); untaxed lines the connection's
  ``untaxed_vat_rate`` (exento), lines without a rate its ``default_vat_rate`` (21). C lines carry none.
- Concept ``products``, shipping included: shipping sold with goods follows them, and a ``both``
  receipt would need a payment due date on or after the (unknown) day of sealing.
- ``ARS`` is ARCA's ``PES``; a ``USD`` order is a ``DOL`` receipt at the connection's rate.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from stalela.connectors.mapping.layout import Written, contacts, currency, invoice_lines, reference, tax_code
from stalela.connectors.mapping.model import Buyer, Order
from stalela.connectors.mapping.options import MappingOptions
from stalela.connectors.mapping.values import Unmappable, text
from stalela.fiscal.jurisdictions import ar_data as data

CODE = data.CODE
OWN_CURRENCY = "ARS"
ARCA_CURRENCY = {"ARS": data.CURRENCY, "USD": "DOL"}  # ISO 4217 -> ARCA's MonId
RATE_CODES: dict[Decimal, str] = {
    rate.rate: code for code, rate in data.RATES.items() if rate.kind == data.TAXED and rate.rate > 0
}
# A factura of each class, and the credit note that corrects it.
FACTURA = {r.letter: t for t, r in data.RECEIPT_TYPES.items() if r.kind == data.FACTURA}
CREDIT_NOTE_TYPE = {
    t: next(c for c, n in data.RECEIPT_TYPES.items() if n.kind == data.NOTA_CREDITO and n.letter == r.letter)
    for t, r in data.RECEIPT_TYPES.items() if r.kind != data.NOTA_CREDITO
}
CUIT_LENGTH = 11


def write(order: Order, *, outlet_id: str, options: MappingOptions) -> Written:
    letters = data.ISSUER_LETTERS.get(options.issuer_vat_condition or "")
    if letters is None:
        # The tenant's condition, given by the caller: a missing one is the caller's bug, not the order's.
        raise ValueError(f"mapping to AR needs options.issuer_vat_condition, one of {', '.join(data.ISSUER_LETTERS)}; "
                         f"got {options.issuer_vat_condition!r}")
    plan = currency(order, options, own=OWN_CURRENCY, foreign_allowed=frozenset({"USD"}))
    buyer, condition = _buyer(order.buyer, options)
    letter = _letter(letters, condition)
    body: dict[str, Any] = {
        "outlet_id": outlet_id,
        "type": FACTURA[letter],
        "price_mode": data.PRICE_GROSS if order.taxes_included else data.PRICE_NET,
        "currency": ARCA_CURRENCY[order.currency],
        "reference": reference(order.platform, order.key, options),
        "lines": invoice_lines(order, lambda line: {} if letter == "C" else {"vat_rate": tax_code(
            line, rates=RATE_CODES, default=options.default_vat_rate, untaxed=options.untaxed_vat_rate,
            jurisdiction="IVA")}),
    }
    if plan.rate is not None:
        body["exchange_rate"] = str(plan.rate.rate)
    if buyer is not None:
        body["buyer"] = buyer
    return Written(body)  # a DOL receipt keeps the order's amounts: nothing is converted


def _letter(issuer_letters: frozenset[str], condition: str) -> str:
    if "A" in issuer_letters and condition in data.CLASS_VAT_CONDITIONS["A"]:
        return "A"
    if "B" in issuer_letters:
        return "B"
    return "C"


def document(buyer: Buyer) -> tuple[str, str] | None:
    """(doc_type, number) of the buyer's identification as ARCA takes it; None when unidentified.

    Dots, dashes and spaces are dropped ("20.123.456" is how a DNI is usually written); a kind outside
    CUIT, CUIL, DNI (a passport on Mercado Libre) leaves the buyer unidentified, which the engine accepts
    below the consumidor final threshold and refuses above it (missing_buyer_id)."""
    if not buyer.id_number or buyer.id_type not in ("CUIT", "CUIL", "DNI", "TAX_ID"):
        return None
    digits = "".join(c for c in buyer.id_number if c not in ".- ")
    kind = buyer.id_type
    if kind == "TAX_ID":
        if len(digits) == CUIT_LENGTH:
            kind = "CUIT"
        elif len(digits) in data.DNI_LENGTHS:
            kind = "DNI"
        else:
            raise Unmappable("invalid_buyer_id", f"the buyer's document {buyer.id_number!r} is neither a CUIT "
                                                 f"(11 digits) nor a DNI (7 or 8 digits)")
    return kind, digits


def _buyer(buyer: Buyer, options: MappingOptions) -> tuple[dict[str, Any] | None, str]:
    doc = document(buyer)
    condition = buyer.vat_condition
    if condition is None:
        condition = options.cuit_vat_condition if doc is not None and doc[0] == "CUIT" else data.CONSUMIDOR_FINAL
    name = text(buyer.company or buyer.name, data.LIMITS.name_max)
    extra = contacts(buyer)
    if doc is None:
        if condition == data.CONSUMIDOR_FINAL and name is None and not extra:
            return None, condition  # the engine's consumidor final, not identified
        out: dict[str, Any] = {"doc_type": data.CF_DOC}
    else:
        out = {"doc_type": doc[0], "doc_number": doc[1]}
    out["vat_condition"] = condition
    if name is not None:
        out["name"] = name
    out.update(extra)
    return out, condition
