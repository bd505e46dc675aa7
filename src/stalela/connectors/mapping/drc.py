"""A neutral order as a DRC invoice body (docs/jurisdictions/drc.md).

- Type ``FV`` (a domestic sale), in CDF. A USD order is converted line by line at the connection's
  rate, and the invoice shows the USD equivalent (``exchange``), which is what is compared with the
  platform's total.
- ``price_mode`` ``ttc`` when the order's prices include tax, ``ht`` otherwise: the DGI's VAT is then
  computed by the engine per group, never copied from the platform.
- Tax group by the rate the platform applied: 16 % B, 8 % C, untaxed the connection's
  ``untaxed_tax_group`` (A, exempt), no rate given its ``default_tax_group`` (B). Another rate is
  ``unmappable_tax``. F and G (public contracts) and the levy groups are never guessed from a rate.
- Item type ``BIE`` for goods; ``SER`` for fees and, unless the connection says otherwise, shipping.
- Client type ``PM`` (or the connection's ``buyer_type_with_tax_id``) when the buyer gave a tax id,
  else ``PP`` (a natural person; anonymous when the order names nobody).
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from stalela.connectors.mapping.layout import Written, contacts, currency, invoice_lines, reference, tax_code
from stalela.connectors.mapping.model import FEE, SHIPPING, Line, Order
from stalela.connectors.mapping.options import MappingOptions
from stalela.connectors.mapping.values import Unmappable
from stalela.fiscal.core.rules import PRICE_MODE_HT, PRICE_MODE_TTC
from stalela.fiscal.jurisdictions import drc as rules

CODE = rules.CODE
OWN_CURRENCY = rules.CURRENCY
INVOICE_TYPE = "FV"
CREDIT_NOTE_TYPE = {"FV": "FA", "FT": "FA", "EV": "EA", "ET": "EA"}
# The groups a platform's rate can name: the ordinary taxable groups, read from the engine's table so
# a new rate there is a new mapping here.
RATE_GROUPS: dict[Decimal, str] = {
    group.rate: letter for letter, group in rules.TAX_GROUPS.items()
    if group.rate > 0 and not group.settled_by_credit and not group.amount_is_vat
}
# What a buyer's id is to the DGI: a DNI is an identity card, not a tax number.
TAX_ID_TYPES = frozenset({"CUIT", "CUIL", "TAX_ID"})
TAX_ID_MAX = 64  # the API's bound (BuyerIn.tax_id)


def write(order: Order, *, outlet_id: str, options: MappingOptions) -> Written:
    plan = currency(order, options, own=OWN_CURRENCY, foreign_allowed=rules.EXCHANGE_CURRENCIES)
    convert = plan.rate.rate if plan.rate is not None else None
    body: dict[str, Any] = {
        "outlet_id": outlet_id,
        "type": INVOICE_TYPE,
        "price_mode": PRICE_MODE_TTC if order.taxes_included else PRICE_MODE_HT,
        "currency": OWN_CURRENCY,
        "reference": reference(order.platform, order.key, options),
        "lines": invoice_lines(order, lambda line: _codes(line, options), convert),
    }
    buyer = _buyer(order, options)
    if buyer is not None:
        body["buyer"] = buyer
    if plan.foreign is not None and plan.rate is not None:
        body["exchange"] = {"currency": plan.foreign, "rate": str(plan.rate.rate), "date": plan.rate.date}
    return Written(body, plan.foreign)


def with_payments(body: dict[str, Any], payable: str, options: MappingOptions) -> dict[str, Any]:
    """The body saying the payable was paid by the connection's method (an online order is paid)."""
    if options.payment_method is None:
        return body
    return {**body, "payments": [{"method": options.payment_method, "amount": payable}]}


def _codes(line: Line, options: MappingOptions) -> dict[str, str]:
    if line.kind == FEE or (line.kind == SHIPPING and options.shipping_as_service):
        item_type = "SER"
    else:
        item_type = "BIE"
    return {"item_type": item_type, "tax_group": tax_code(line, rates=RATE_GROUPS, default=options.default_tax_group,
                                                    untaxed=options.untaxed_tax_group, jurisdiction="DRC VAT")}


def _buyer(order: Order, options: MappingOptions) -> dict[str, Any] | None:
    b = order.buyer
    extra = contacts(b)
    if b.id_number and b.id_type in TAX_ID_TYPES:
        if len(b.id_number) > TAX_ID_MAX:  # cutting it would seal another number
            raise Unmappable("invalid_buyer_id", f"the buyer's tax id is longer than {TAX_ID_MAX} characters")
        return {"type": options.buyer_type_with_tax_id, "name": b.company or b.name, "tax_id": b.id_number, **extra}
    name = b.name or b.company
    if name is None and not extra:
        return None  # an anonymous natural person, as the DRC reads an invoice without a buyer
    return {"type": rules.ANONYMOUS_BUYER_TYPE, **({"name": name} if name else {}), **extra}
