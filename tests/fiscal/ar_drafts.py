"""Builders for Argentine drafts, so each test states only what it is about."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from stalela.fiscal.core.invoice import Buyer, DraftLine, InvoiceDraft, OriginalInvoice

RI = "responsable_inscripto"
BUYER_CUIT = "30000000007"  # check digit 7: 3x5 = 15, 15 % 11 = 4, 11 - 4 = 7
SELLER_CUIT = "20267565393"


def _d(value: str | Decimal | Any) -> Any:
    return Decimal(value) if isinstance(value, str) else value


def ar_line(rate: str | None = "21", quantity: str | Decimal = "1",
            unit_price: str | Decimal = "100.00", *, description: str = "Artículo",
            code: str | None = None, **fields: Any) -> DraftLine:
    return DraftLine(description=description, code=code, vat_rate=rate, quantity=_d(quantity),
                     unit_price=_d(unit_price), **fields)


def c_line(quantity: str | Decimal = "1", unit_price: str | Decimal = "100.00",
           **fields: Any) -> DraftLine:
    return ar_line(None, quantity, unit_price, **fields)


def ar_draft(*lines: DraftLine, type: str = "6", **fields: Any) -> InvoiceDraft:
    """A B invoice by an RI issuer, in pesos, prices per the letter's default, unless told."""
    if not lines:
        lines = (c_line(),) if type in ("11", "12", "13") else (ar_line(),)
    issuer = "monotributo" if type in ("11", "12", "13") else RI
    values: dict[str, Any] = {"price_mode": None, "currency": "PES", "issuer_vat_condition": issuer}
    values.update(fields)
    return InvoiceDraft(type=type, lines=lines, **values)


def ri_buyer(**fields: Any) -> Buyer:
    return Buyer(**{"doc_type": "CUIT", "doc_number": BUYER_CUIT, "name": "Pampa Insumos SA",
                    "vat_condition": RI, **fields})


def a_draft(*lines: DraftLine, type: str = "1", **fields: Any) -> InvoiceDraft:
    return ar_draft(*lines, type=type, **{"buyer": ri_buyer(), **fields})


def ar_original(type: str = "1", total: str = "121.00", credited: str = "0.00",
                **extra: Any) -> OriginalInvoice:
    block = {"cbte_tipo": int(type), "letter": "A", "point_of_sale": 3, "number": 41,
             "date": "2026-12-01", "currency": "PES", "cuit": SELLER_CUIT, **extra}
    return OriginalInvoice(fiscal_number="A 00003-00000041", type=type, total=Decimal(total),
                           credited_total=Decimal(credited), extra=block)
