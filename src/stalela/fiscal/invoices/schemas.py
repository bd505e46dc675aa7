"""The sealing API's request shape. Codes (type, tax group, ...) stay plain strings here on purpose:
the jurisdiction's rules check them and answer with their own stable error codes."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, Field

from stalela.kit.schemas import CalendarDate, StrictModel

# max_digits bounds the work any number can cause (1e999999 is refused here, not computed with).
Amount = Annotated[Decimal, Field(max_digits=18, allow_inf_nan=False)]
Code = Annotated[str, Field(max_length=16)]


_In = StrictModel


class LineIn(_In):
    description: str = Field(max_length=1000)
    code: str | None = Field(None, max_length=64)
    item_type: Code
    tax_group: Code
    quantity: Amount
    unit_price: Amount


class BuyerIn(_In):
    type: Code
    name: str | None = Field(None, max_length=200)
    tax_id: str | None = Field(None, max_length=64)
    exemption_ref: str | None = Field(None, max_length=100)


class PaymentIn(_In):
    method: Code
    amount: Amount


class ExchangeIn(_In):
    currency: Code
    rate: Amount
    date: CalendarDate


class InvoiceCreate(_In):
    outlet_id: str = Field(max_length=64)
    type: Code
    price_mode: Code = "ht"
    lines: list[LineIn] = Field(max_length=10_000)
    buyer: BuyerIn | None = None
    nature: Code | None = None
    original: str | None = Field(None, max_length=64)
    payments: list[PaymentIn] | None = Field(None, max_length=100)
    currency: Code = "CDF"
    exchange: ExchangeIn | None = None
    reference: str | None = Field(None, min_length=1, max_length=100)


class BatchItem(_In):
    idempotency_key: str | None = Field(None, min_length=1, max_length=255)
    # Validated item by item (as an InvoiceCreate), so one malformed invoice rejects only itself.
    invoice: dict[str, Any] = Field(description="An invoice, exactly as POST /v1/invoices takes it.")


class InvoiceBatch(_In):
    items: list[BatchItem] = Field(min_length=1, max_length=10_000)


class InvoiceFilters(BaseModel):
    outlet_id: str | None = None
    type: str | None = None
    issued_at_gte: datetime | None = None
    issued_at_lt: datetime | None = None
    fiscal_number: str | None = None


InvoiceOut = dict[str, Any]  # the sealed document; its shape is documented in docs/api.md
