"""The bills API's models: the tenant's bills and the operator's issuer and revenue."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from stalela.kit.schemas import StrictModel

Status = Literal["draft", "sealed", "empty"]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IssuerIn(StrictModel):
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
    plan_id: str | None = None
    rate_card_version: int | None = None
    billed_before: str | None = Field(None, description="Adjustments: what earlier bills already billed for it")


class CreditNote(_Out):
    resource: str
    period_of: str
    amount: str = Field(description="Credited, before taxes")
    invoice_id: str | None = Field(description="The sealed credit note (of the issuer)")
    original: str | None = Field(description="The fiscal number of the invoice it credits")


class BillOut(BillSummary):
    finalize_after: datetime
    sealed_at: datetime | None
    created_at: datetime
    invoice_total: str | None = Field(description="The sealed invoice's total, taxes included")
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


class RevenueRow(BillSummary):
    tenant_id: str
    tenant_name: str
    invoice_total: str | None


class Revenue(_Out):
    period: str
    data: list[RevenueRow]
