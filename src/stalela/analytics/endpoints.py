"""Analytics routes (docs/analytics.md): read-only, ``reports:read`` like the Z and X reports they add up."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from stalela.analytics import formats, schemas, service
from stalela.analytics.periods import month_start
from stalela.auth.dependencies import AppSettings, Can, DbSession
from stalela.auth.permissions import Perm
from stalela.kit.jsonbody import JSONRoute
from stalela.kit.openapi import media
from stalela.kit.schemas import QueryId

router = APIRouter(route_class=JSONRoute, prefix="/v1/analytics", tags=["analytics"])
Reader = Can(Perm.REPORTS_READ)
CSV = {200: media("text/csv", description="The figures (JSON), or as CSV with format=csv or Accept: text/csv"),
       422: {"description": "analytics_range_invalid, analytics_range_too_long, outlet_not_found, or a parameter "
                            "out of its bounds (the problem names the field)"}}


def _answer(request: Request, name: str, body: dict[str, Any], fmt: str | None) -> Response:
    """JSON (the route's model, which tests/analytics checks every answer against), or CSV when asked."""
    if fmt is None and "text/csv" in request.headers.get("accept", ""):
        fmt = "csv"
    if fmt == "csv":
        return Response(formats.to_csv(name, body), media_type=formats.MEDIA_TYPE,
                        headers={"Content-Disposition": f'attachment; filename="{formats.filename(name, body)}"'})
    return JSONResponse(body)


@router.get("/summary", response_model=schemas.SummaryOut, responses=CSV)
async def summary(request: Request, principal: Reader, session: DbSession, start: schemas.From = None,
                  end: schemas.To = None, interval: schemas.Interval = "day", outlet_id: QueryId = None,
                  format: schemas.FormatQuery = None):
    """Invoice counts and revenue per period (day, ISO week, month) and currency, with the range's totals."""
    w = await service.window(session, principal, start, end, outlet_id, service.SUMMARY_START[interval])
    return _answer(request, "summary", await service.summary(session, w, interval), format)


@router.get("/taxes", response_model=schemas.TaxesOut, responses=CSV)
async def taxes(request: Request, principal: Reader, session: DbSession, start: schemas.From = None,
                end: schemas.To = None, by: schemas.TaxesBy = "group", outlet_id: QueryId = None,
                format: schemas.FormatQuery = None):
    """Amount, base and VAT per tax group (or per rate) and currency, credit notes subtracted."""
    w = await service.window(session, principal, start, end, outlet_id, service.default_days(30))
    return _answer(request, "taxes", await service.taxes(session, w, by), format)


@router.get("/types", response_model=schemas.TypesOut, responses=CSV)
async def types(request: Request, principal: Reader, session: DbSession, start: schemas.From = None,
                end: schemas.To = None, outlet_id: QueryId = None, format: schemas.FormatQuery = None):
    """Documents and their totals per invoice type and currency."""
    w = await service.window(session, principal, start, end, outlet_id, service.default_days(30))
    return _answer(request, "types", await service.types(session, w), format)


@router.get("/outlets", response_model=schemas.OutletsOut, responses=CSV)
async def outlets(request: Request, principal: Reader, session: DbSession, start: schemas.From = None,
                  end: schemas.To = None, outlet_id: QueryId = None, format: schemas.FormatQuery = None):
    """Counts and revenue per outlet and currency (every outlet, those without sales at zero)."""
    w = await service.window(session, principal, start, end, outlet_id, service.default_days(30))
    return _answer(request, "outlets", await service.outlets(session, w), format)


@router.get("/buyers/top", response_model=schemas.BuyersOut, responses=CSV)
async def top_buyers(request: Request, principal: Reader, session: DbSession, settings: AppSettings,
                     start: schemas.From = None, end: schemas.To = None, limit: schemas.Limit = 10,
                     format: schemas.FormatQuery = None):
    """The buyers with the most revenue per currency, over whole months, for the whole tenant (buyers are
    summed per month over every outlet)."""
    w = await service.window(session, principal, start, end, None, month_start)
    return _answer(request, "buyers", await service.buyers(session, settings, w, limit), format)


@router.get("/authority", response_model=schemas.AuthorityOut, responses=CSV)
async def authority(request: Request, principal: Reader, session: DbSession, start: schemas.From = None,
                    end: schemas.To = None, outlet_id: QueryId = None, format: schemas.FormatQuery = None):
    """The authority's answers to the invoices sealed in the range: approval rate, seconds from the seal to the
    acknowledgement (mean, P50, P95 from a histogram), per day."""
    w = await service.window(session, principal, start, end, outlet_id, service.default_days(30))
    return _answer(request, "authority", await service.authority(session, w), format)


@router.get("/forecast", response_model=schemas.ForecastOut, responses=CSV)
async def forecast(request: Request, principal: Reader, session: DbSession, method: schemas.Method = "trend",
                   months: schemas.Months = 6, outlet_id: QueryId = None, format: schemas.FormatQuery = None):
    """Next calendar month's revenue per currency, and the method's error on the past months (MAE, MAPE)."""
    w = await service.window(session, principal, None, None, outlet_id, month_start)
    return _answer(request, "forecast", await service.forecast(session, w, method, months), format)
