"""The sealing API's request shape. Codes (type, tax group, ...) stay plain strings here on purpose:
the jurisdiction's rules check them and answer with their own stable error codes."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, Field, StrictBool

from stalela.errors import ValidationFailed
from stalela.kit.schemas import CalendarDate, StrictModel

# max_digits bounds the work any number can cause (1e999999 is refused here, not computed with).
Amount = Annotated[Decimal, Field(max_digits=18, allow_inf_nan=False)]
Code = Annotated[str, Field(max_length=16)]


_In = StrictModel


class LineIn(_In):
    description: str = Field(max_length=1000)
    code: str | None = Field(None, max_length=64)
    item_type: Code | None = Field(None, description="DRC: BIE, SER or TAX")
    tax_group: Code | None = Field(None, description="DRC: the tax group letter")
    vat_rate: Code | None = Field(None, description='Argentina: "21", "10.5", "27", "5", "2.5", "0", '
                                                    '"exento" or "no_gravado"')
    quantity: Amount
    unit_price: Amount


class BuyerIn(_In):
    type: Code | None = Field(None, description="DRC: PP, PM, PC, PL or AO")
    name: str | None = Field(None, max_length=200)
    tax_id: str | None = Field(None, max_length=64)
    exemption_ref: str | None = Field(None, max_length=100)
    doc_type: Code | None = Field(None, description="Argentina: CUIT, CUIL, DNI or CF")
    doc_number: str | None = Field(None, max_length=20)
    vat_condition: str | None = Field(None, max_length=40, description="Argentina: the buyer's IVA condition "
                                                                       "(RG 5616), e.g. consumidor_final")
    # Contacts: personal data, never signed in clear (seal v2 commits to them) and erasable on request.
    email: str | None = Field(None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    phone: str | None = Field(None, max_length=40)
    address: str | None = Field(None, max_length=500)
    reference: str | None = Field(None, max_length=100, description="The merchant's own id for this customer: "
                                                                    "an erasure request can name the buyer by it")
    new_subject: StrictBool = Field(False, description="The buyer's identifiers belonged to someone whose data was erased "
                                                 "and this is a new customer: do not refuse with subject_erased")


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
    price_mode: Code | None = Field(None, description="DRC: ht (default) or ttc; Argentina: net (default for A) "
                                                       "or gross (default for B and C)")
    lines: list[LineIn] = Field(max_length=10_000)
    buyer: BuyerIn | None = None
    nature: Code | None = None
    original: str | None = Field(None, max_length=64)
    payments: list[PaymentIn] | None = Field(None, max_length=100)
    currency: Code | None = Field(None, description="Default: the jurisdiction's (CDF; Argentina PES, or DOL)")
    exchange: ExchangeIn | None = None
    reference: str | None = Field(None, min_length=1, max_length=100)
    # Argentina (WSFEv1)
    concept: Code | None = Field(None, description="Argentina: products (default), services or both")
    service_from: CalendarDate | None = None
    service_to: CalendarDate | None = None
    payment_due: CalendarDate | None = None
    exchange_rate: Amount | None = Field(None, description="Argentina: pesos per dollar of a DOL invoice")


# Idempotency-Keys the service makes itself (a draft's seal: ``stalela:draft:<id>``): no client may send one,
# or it could take a draft's key first and make the draft unsealable, or pass its invoice off as the draft's.
RESERVED_KEY_PREFIX = "stalela:"


def check_client_key(key: str | None, field: str = "Idempotency-Key") -> str | None:
    if key is not None and key.lower().startswith(RESERVED_KEY_PREFIX):
        raise ValidationFailed(f"an Idempotency-Key may not start with {RESERVED_KEY_PREFIX!r} (reserved)",
                               code="idempotency_key_reserved", field=field)
    return key


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
