"""The bills API's models: the tenant's bills and the operator's issuer and revenue."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from stalela.billing.rating_schemas import _decimal as decimal_string
from stalela.kit.schemas import StrictModel

Status = Literal["draft", "sealed", "empty"]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Units of the invoice currency per unit of the plan's: > 0, at most 6 decimals, a decimal string.
Rate = Annotated[Decimal, decimal_string(6, 12, positive=True)]
CURRENCY = r"^[A-Z]{3}$"


class ExchangeRateIn(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"currency": "EUR", "rate": "3050.25", "invoice_currency": "CDF"},
    ]})
    currency: str = Field(pattern=CURRENCY, max_length=3, description="The plan's currency, e.g. EUR")
    rate: Rate = Field(description="Units of the invoice currency per unit of currency, e.g. \"3050.25\" CDF per EUR")
    invoice_currency: str | None = Field(None, pattern=CURRENCY, max_length=3,
                                         description="Default: the configured issuer's invoice currency")


class ExchangeRateOut(_Out):
    period: str
    currency: str
    invoice_currency: str
    rate: str
    created_at: datetime
    updated_at: datetime
    used_at: datetime | None = Field(description="When a sealed bill first used it: immutable from then on")


class ExchangeRates(_Out):
    period: str
    data: list[ExchangeRateOut]


class IssuerIn(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"tenant_id": "ten_01m82ejke9nqfx6wjsbqs2stkd", "outlet_id": "out_01m82ejke9nqfx6wjsbqs2stkd"},
    ]})
    tenant_id: str = Field(min_length=1, max_length=40, description="The platform's issuing tenant")
    outlet_id: str = Field(min_length=1, max_length=40, description="Its outlet whose series numbers the bills")


class IssuerOut(_Out):
    tenant_id: str
    outlet_id: str
    updated_at: datetime


class BillSummary(_Out):
    id: str
    period: str = Field(description="YYYY-MM, a UTC calendar month")
    status: Status = Field(description="draft until the grace period ends; sealed (an invoice); empty (nothing to bill)")
    total: str = Field(description="Before the issuer's taxes; the sealed invoice carries them")
    currency: str
    invoice_id: str | None


class BillLine(_Out):
    kind: Literal["usage", "adjustment"]
    resource: str
    period_of: str = Field(description="The period the usage belongs to (earlier than the bill's for adjustments)")
    quantity: str
    amount: str
    invoice_amount: str | None = Field(None, description="Once sealed: the amount on the invoice, in its currency "
                                       "(amount × the bill's exchange_rate, rounded once, half up)")
    plan_id: str | None = None
    rate_card_version: int | None = None
    billed_before: str | None = Field(None, description="Adjustments: what earlier bills already billed for it")


class CreditNote(_Out):
    resource: str
    period_of: str
    amount: str = Field(description="Credited, before taxes")
    invoice_amount: str | None = Field(None, description="Credited, in the invoice currency")
    invoice_id: str | None = Field(description="The sealed credit note (of the issuer)")
    original: str | None = Field(description="The fiscal number of the invoice it credits")
    exchange_rate: str | None = Field(None, description="The rate it was converted at: the credited invoice's")


class _InvoiceFigures(_Out):
    invoice_currency: str | None = Field(description="The sealed invoice's currency (the issuer's)")
    invoice_total: str | None = Field(description="The sealed invoice's total, taxes included, in invoice_currency")
    pending_reason: str | None = Field(description="Why a draft past its grace is not sealed yet (code: detail)")


class BillOut(BillSummary, _InvoiceFigures):
    finalize_after: datetime
    sealed_at: datetime | None
    created_at: datetime
    exchange_rate: str | None = Field(description="invoice_currency per unit of currency, when they differ")
    lines: list[BillLine]
    credit_notes: list[CreditNote]
    invoice: dict[str, Any] | None = Field(description="The sealed invoice (of the issuer), seal included")


class DayUsage(_Out):
    model_config = ConfigDict(extra="allow")
    day: str
    quantity: str


class UsageLine(_Out):
    kind: Literal["usage", "adjustment"]
    resource: str
    period_of: str
    quantity: str
    amount: str
    invoice_amount: str | None = Field(description="Once sealed: the amount in the invoice currency")
    plan_id: str | None
    rate_card_version: int | None
    event_count: int | None
    events_sha256: str | None = Field(description="SHA-256 of the sorted ids of the events (and voids) counted")
    days: list[DayUsage] | None


class BillUsage(_Out):
    id: str
    period: str
    currency: str
    data: list[UsageLine]


class EstimateLine(_Out):
    resource: str
    quantity: str
    amount: str
    plan_id: str | None
    rate_card_version: int | None


class Estimate(_Out):
    period: str
    currency: str | None
    total: str
    lines: list[EstimateLine]


class RevenueRow(BillSummary, _InvoiceFigures):
    tenant_id: str
    tenant_name: str


class Revenue(_Out):
    period: str
    data: list[RevenueRow]
