"""API models of plans, rate cards, billing accounts and quotas. Amounts and quantities are decimal
strings (an integer is accepted for a quantity; a JSON float never: it is not exact)."""
from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from stalela.billing import rating
from stalela.kit.schemas import CalendarDate, StrictModel

PLAN_ID = r"^[a-z0-9][a-z0-9_-]{0,63}$"
RESOURCE = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]{0,63}$")]


def _decimal(places: int, digits: int, *, positive: bool = False):  # noqa: ANN202
    shape = re.compile(rf"^[0-9]{{1,{digits}}}(\.[0-9]{{1,{places}}})?\Z")

    def parse(value: Any) -> Decimal:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not shape.match(value):
            raise PydanticCustomError(
                "decimal_format", f"a decimal string >= 0 with at most {digits} digits before the point and "
                f"{places} after it, e.g. \"0.0125\"")
        out = Decimal(value)
        if positive and out == 0:
            raise PydanticCustomError("decimal_positive", "must be greater than 0")
        return out
    return BeforeValidator(parse)


Price = Annotated[Decimal, _decimal(rating.PRICE_PLACES, 12)]
Units = Annotated[Decimal, _decimal(9, 18)]
PositiveUnits = Annotated[Decimal, _decimal(9, 18, positive=True)]
Threshold = Annotated[Decimal, _decimal(4, 3, positive=True)]


class TierIn(StrictModel):
    up_to: PositiveUnits | None = Field(..., description="Units of the period where this tier ends; null: no end")
    unit_price: Price


class PriceEntryIn(StrictModel):
    """A resource's price: ``unit_price`` for every ``per`` units, or graduated ``tiers``; after ``free``."""
    unit_price: Price | None = None
    per: PositiveUnits | None = Field(None, description="Units a price is for (default by resource)")
    free: Units = Field(Decimal(0), description="Units of each period that cost nothing")
    tiers: list[TierIn] | None = Field(None, min_length=1, max_length=50)

    @model_validator(mode="after")
    def _one_way(self) -> PriceEntryIn:
        if (self.unit_price is None) == (self.tiers is None):
            raise PydanticCustomError("price_shape", "give either unit_price or tiers, not both")
        if self.tiers:
            bounds = [t.up_to for t in self.tiers]
            if bounds[-1] is not None or None in bounds[:-1]:
                raise PydanticCustomError("tiers_open_end", "only the last tier, and it always, has up_to null")
            finite = bounds[:-1]
            if any(high <= low for low, high in zip(finite, finite[1:])):
                raise PydanticCustomError("tiers_ascending", "tiers' up_to must be strictly ascending")
        return self

    def to_entry(self, resource: str) -> rating.PriceEntry:
        return rating.PriceEntry(
            per=self.per if self.per is not None else rating.default_per(resource), free=self.free,
            unit_price=self.unit_price,
            tiers=tuple(rating.Tier(t.up_to, t.unit_price) for t in self.tiers or ()))


Quotas = Annotated[dict[RESOURCE, Units], Field(max_length=64)]


class PlanCreate(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"id": "pro", "name": "Pro", "currency": "EUR", "quotas": {"invoices_sealed": 50000}},
    ]})
    id: str = Field(..., max_length=64, pattern=PLAN_ID, description="A slug: lowercase letters, digits, - and _")
    name: str = Field(..., min_length=1, max_length=200)
    currency: str = Field("EUR", max_length=3, pattern=r"^[A-Z]{3}$")
    quotas: Quotas | None = Field(None, description="Caps per calendar month (UTC), by resource")


class PlanUpdate(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "Pro 2027", "quotas": {"invoices_sealed": 80000}},
    ]})
    name: str | None = Field(None, min_length=1, max_length=200)
    quotas: Quotas | None = None  # null removes every cap


class RateCardCreate(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"effective_from": "2027-01-01", "prices": {"api_calls": {"unit_price": "0.08", "per": 1000, "free": 500000},
                                                    "invoices_sealed": {"unit_price": "0.002", "free": 1000}}},
    ]})
    effective_from: CalendarDate
    prices: Annotated[dict[RESOURCE, PriceEntryIn], Field(min_length=1, max_length=64)]


class AccountUpdate(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"plan_id": "pro", "anomaly_threshold": "3", "anomaly_method": "mad"},
    ]})
    plan_id: str = Field(..., max_length=64, pattern=PLAN_ID)
    anomaly_threshold: Threshold | None = Field(None, description="z-score threshold; null: the platform's")
    anomaly_method: Literal["zscore", "mad"] | None = None


class PlanOut(BaseModel):
    id: str
    name: str
    currency: str
    quotas: dict[str, str]
    created_at: datetime
    updated_at: datetime


class RateCardOut(BaseModel):
    plan_id: str
    version: int
    effective_from: date
    currency: str
    prices: dict[str, dict[str, Any]]
    created_at: datetime
    used_at: datetime | None


class AccountOut(BaseModel):
    tenant_id: str
    plan_id: str
    quotas: dict[str, str]
    anomaly_threshold: str | None
    anomaly_method: str | None


class QuotaUse(BaseModel):
    resource: str
    cap: str
    used: str
    remaining: str


class QuotasOut(BaseModel):
    period: str
    reset_at: str
    data: list[QuotaUse]
