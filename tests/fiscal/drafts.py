"""Small builders so each test states only what it is about."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from stalela.fiscal.core.invoice import Buyer, DraftLine, InvoiceDraft, Payment


def line(
    group: str = "B",
    quantity: str | Decimal = "1",
    unit_price: str | Decimal = "100.00",
    *,
    item_type: str | None = None,
    description: str = "Article",
    code: str | None = None,
) -> DraftLine:
    if item_type is None:
        item_type = "TAX" if group in ("L", "N") else "BIE"
    return DraftLine(
        description=description,
        code=code,
        item_type=item_type,
        tax_group=group,
        quantity=Decimal(quantity) if isinstance(quantity, str) else quantity,
        unit_price=Decimal(unit_price) if isinstance(unit_price, str) else unit_price,
    )


def draft(*lines: DraftLine, type: str = "FV", **fields: Any) -> InvoiceDraft:
    return InvoiceDraft(type=type, lines=lines or (line(),), **fields)


def company(**fields: Any) -> Buyer:
    return Buyer(**{"type": "PM", "name": "Kivu Trading SARL", "tax_id": "A1234567B", **fields})


def embassy(**fields: Any) -> Buyer:
    return Buyer(**{"type": "AO", "name": "Embassy", "exemption_ref": "DGI/EXO/2025/001", **fields})


def pay(method: str, amount: str) -> Payment:
    return Payment(method=method, amount=Decimal(amount))
