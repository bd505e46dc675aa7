"""API models of analytics: the query parameters and the answers (money as decimal strings, per currency)."""
from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import ConfigDict, Field

from stalela.kit.schemas import CalendarDate, StrictModel

Money = Annotated[str, Field(pattern=r"^-?\d+\.\d{2}$", examples=["1234.50"])]
Format = Literal["json", "csv"]

From = Annotated[CalendarDate | None, Query(alias="from", description="First business day, included (default: "
                                            "depends on the route, see docs/analytics.md)")]
To = Annotated[CalendarDate | None, Query(alias="to", description="Last business day, included (default: today in "
                                          "the jurisdiction's timezone)")]
FormatQuery = Annotated[Format | None, Query(alias="format", description="json (default) or csv; or send "
                                             "Accept: text/csv")]
Interval = Annotated[Literal["day", "week", "month"], Query(description="Periods: business days, ISO weeks "
                                                            "(Monday first) or calendar months")]
TaxesBy = Annotated[Literal["group", "rate"], Query(description="One line per tax group, or per rate (groups "
                                                    "with the same rate added)")]
Limit = Annotated[int, Query(ge=1, le=100, description="Buyers per currency")]
Method = Annotated[Literal["trend", "seasonal"], Query(description="trend: least-squares line over the last "
                                                      "`months` complete months; seasonal: the same month a year before")]
Months = Annotated[int, Query(ge=2, le=24, description="Complete months the trend is fitted on")]

_CDF = {"invoices": 212, "credit_notes": 3, "sales": "21654500.00", "credited": "156600.00",
        "revenue": "21497900.00", "vat": "2965227.59"}


class Figures(StrictModel):
    invoices: int = Field(description="Documents sealed, credit notes included (a Z report's counts.invoices)")
    credit_notes: int
    sales: Money = Field(description="Totals of the documents that are not credit notes")
    credited: Money = Field(description="Totals of the credit notes")
    revenue: Money = Field(description="sales - credited: a Z report's totals.total, summed")
    vat: Money = Field(description="Net VAT (credit notes subtracted)")


class CurrencyFigures(Figures):
    currency: str


class PeriodFigures(CurrencyFigures):
    start: date
    end: date


class Head(StrictModel):
    from_: date = Field(alias="from")
    to: date
    outlet_id: str | None = Field(None, description="The outlet asked for; null: every outlet the caller may read")
    as_of: datetime


class SummaryOut(Head):
    model_config = ConfigDict(populate_by_name=True, json_schema_extra={"examples": [{
        "object": "analytics.summary", "from": "2026-11-01", "to": "2026-11-14", "outlet_id": None,
        "interval": "week", "currencies": ["CDF"], "totals": [{"currency": "CDF", **_CDF}],
        "periods": [{"start": "2026-11-01", "end": "2026-11-01", "currency": "CDF", **_CDF},
                    {"start": "2026-11-02", "end": "2026-11-08", "currency": "CDF", **_CDF | {"credit_notes": 0}},
                    {"start": "2026-11-09", "end": "2026-11-14", "currency": "CDF", **_CDF}],
        "connectors": None, "as_of": "2026-11-14T16:05:00Z"}]})
    object: Literal["analytics.summary"]
    interval: Literal["day", "week", "month"]
    currencies: list[str]
    totals: list[CurrencyFigures]
    periods: list[PeriodFigures] = Field(description="Every period of the range (clipped to it) and currency, "
                                         "empty ones included: they add up to the totals")
    connectors: dict[str, Any] | None = Field(None, description="Marketplace orders vs invoices; null until the "
                                              "connectors provide it (docs/analytics.md)")


class TaxLine(StrictModel):
    currency: str
    group: str | None = Field(None, description="The tax group; null when answered by rate")
    rate: str
    invoices: int = Field(description="Documents with this group or rate")
    amount: Money
    base: Money
    vat: Money


class TaxTotals(StrictModel):
    currency: str
    amount: Money
    base: Money
    vat: Money


class TaxesOut(Head):
    model_config = ConfigDict(populate_by_name=True, json_schema_extra={"examples": [{
        "object": "analytics.taxes", "from": "2026-11-01", "to": "2026-11-30", "outlet_id": None, "by": "group",
        "data": [{"currency": "CDF", "group": "A", "rate": "0", "invoices": 40, "amount": "200000.00",
                  "base": "200000.00", "vat": "0.00"},
                 {"currency": "CDF", "group": "B", "rate": "16", "invoices": 180, "amount": "16200000.00",
                  "base": "13965517.24", "vat": "2234482.76"}],
        "totals": [{"currency": "CDF", "amount": "16400000.00", "base": "14165517.24", "vat": "2234482.76"}],
        "as_of": "2026-11-30T18:00:00Z"}]})
    object: Literal["analytics.taxes"]
    by: Literal["group", "rate"]
    data: list[TaxLine]
    totals: list[TaxTotals]


class TypeLine(StrictModel):
    currency: str
    type: str
    credit_note: bool
    invoices: int
    total: Money = Field(description="The documents' totals, as they say (a credit note's positive)")
    base: Money
    vat: Money


class TypesOut(Head):
    model_config = ConfigDict(populate_by_name=True, json_schema_extra={"examples": [{
        "object": "analytics.types", "from": "2026-11-01", "to": "2026-11-30", "outlet_id": None,
        "data": [{"currency": "CDF", "type": "FA", "credit_note": True, "invoices": 3, "total": "156600.00",
                  "base": "135000.00", "vat": "21600.00"},
                 {"currency": "CDF", "type": "FV", "credit_note": False, "invoices": 209, "total": "21654500.00",
                  "base": "18668620.69", "vat": "2985879.31"}],
        "as_of": "2026-11-30T18:00:00Z"}]})
    object: Literal["analytics.types"]
    data: list[TypeLine]


class OutletLine(CurrencyFigures):
    outlet_id: str
    code: str | None = None
    name: str | None = None


class OutletsOut(Head):
    model_config = ConfigDict(populate_by_name=True, json_schema_extra={"examples": [{
        "object": "analytics.outlets", "from": "2026-11-01", "to": "2026-11-30", "outlet_id": None,
        "data": [{"outlet_id": "out_01m82ejke9nqfx6wjsbqs2stkd", "code": "KIN1", "name": "Gombe", "currency": "CDF",
                  **_CDF}],
        "as_of": "2026-11-30T18:00:00Z"}]})
    object: Literal["analytics.outlets"]
    data: list[OutletLine]


class BuyerLine(StrictModel):
    rank: int
    currency: str
    subject_id: str = Field(description="The buyer's data subject: the same buyer across invoices and outlets")
    name: str | None = None
    tax_id: str | None = None
    status: str = Field(description="active, restricted (erasure asked, kept for the tax obligation), erased or "
                        "unknown: the name is shown only when active")
    invoices: int
    credit_notes: int
    revenue: Money
    share: float | None = Field(None, description="Of the period's revenue in this currency (0.25 is 25 %)")


class BuyersOut(Head):
    model_config = ConfigDict(populate_by_name=True, json_schema_extra={"examples": [{
        "object": "analytics.buyers", "from": "2026-11-01", "to": "2026-11-30", "outlet_id": None,
        "granularity": "month", "limit": 10,
        "data": [{"rank": 1, "currency": "CDF", "subject_id": "sub_01m82ejke9nqfx6wjsbqs2stkd",
                  "name": "Kin Marché SARL", "tax_id": "A1234567Z", "status": "active", "invoices": 14,
                  "credit_notes": 1, "revenue": "2845000.00", "share": 0.1323}],
        "as_of": "2026-11-30T18:00:00Z"}]})
    object: Literal["analytics.buyers"]
    granularity: Literal["month"] = Field(description="Buyers are summed per month: from and to are the asked "
                                          "days widened to whole months")
    limit: int
    data: list[BuyerLine]


class Histogram(StrictModel):
    le: float | None = Field(None, description="Upper bound in seconds; null: more than a day")
    count: int


class Seconds(StrictModel):
    mean: float | None = None
    p50: float | None = None
    p95: float | None = None
    histogram: list[Histogram]


class AuthorityDay(StrictModel):
    day: date
    acknowledged: int
    failed: int
    rejected: int


class AuthorityOut(Head):
    model_config = ConfigDict(populate_by_name=True, json_schema_extra={"examples": [{
        "object": "analytics.authority", "from": "2026-11-01", "to": "2026-11-30", "outlet_id": None,
        "acknowledged": 205, "failed": 2, "rejected": 0, "approval_rate": 0.9903, "pending_now": 5,
        "seconds_to_acknowledgement": {"mean": 3.2, "p50": 2.1, "p95": 11.4, "histogram": [
            {"le": 1, "count": 20}, {"le": 5, "count": 160}, {"le": 15, "count": 21}, {"le": 60, "count": 4},
            {"le": 300, "count": 0}, {"le": 900, "count": 0}, {"le": 3600, "count": 0}, {"le": 21600, "count": 0},
            {"le": 86400, "count": 0}, {"le": None, "count": 0}]},
        "days": [{"day": "2026-11-02", "acknowledged": 11, "failed": 0, "rejected": 0}],
        "as_of": "2026-11-30T18:00:00Z"}]})
    object: Literal["analytics.authority"]
    acknowledged: int = Field(description="Invoices sealed in the range that the authority acknowledged")
    failed: int
    rejected: int
    approval_rate: float | None = Field(None, description="acknowledged / (acknowledged + failed + rejected)")
    pending_now: int = Field(description="Invoices waiting for the authority now (any day)")
    seconds_to_acknowledgement: Seconds
    days: list[AuthorityDay]


class Month(StrictModel):
    month: str = Field(pattern=r"^\d{4}-\d{2}$")
    revenue: Money


class BacktestPoint(StrictModel):
    month: str = Field(pattern=r"^\d{4}-\d{2}$")
    actual: Money
    predicted: Money


class Backtest(StrictModel):
    months: int = Field(description="Past months forecast as they would have been")
    mae: Money | None = Field(None, description="Mean absolute error")
    mape: float | None = Field(None, description="Mean absolute percentage error, as a fraction (months with revenue)")
    points: list[BacktestPoint]


class CurrencyForecast(StrictModel):
    currency: str
    forecast: Money | None = Field(None, description="The forecast month's revenue; null with too little history")
    month_to_date: Money
    history: list[Month]
    backtest: Backtest


class ForecastOut(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "object": "analytics.forecast", "outlet_id": None, "method": "trend", "window": 6, "horizon": 2,
        "month": "2026-12", "as_of": "2026-11-20T09:00:00Z",
        "data": [{"currency": "CDF", "forecast": "23800000.00", "month_to_date": "14200000.00",
                  "history": [{"month": "2026-09", "revenue": "19850000.00"},
                              {"month": "2026-10", "revenue": "21497900.00"}],
                  "backtest": {"months": 1, "mae": "912000.00", "mape": 0.0424, "points": [
                      {"month": "2026-10", "actual": "21497900.00", "predicted": "20585900.00"}]}}]}]})
    object: Literal["analytics.forecast"]
    outlet_id: str | None = None
    method: Literal["trend", "seasonal"]
    window: int
    horizon: int = Field(description="Months from the last complete month to the forecast one")
    month: str = Field(pattern=r"^\d{4}-\d{2}$", description="The month forecast: the next calendar month")
    as_of: datetime
    data: list[CurrencyForecast]
