"""The merchant console's Analytics page (/app/analytics) and its CSV downloads, over the analytics service:
every figure is the one ``/v1/analytics`` answers for the same window (docs/analytics.md), with the same
permission (``reports:read``) and the same outlet restriction for a till's credential."""
from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.analytics import formats
from stalela.analytics import service as analytics
from stalela.analytics.periods import INTERVALS, add_months, month_start
from stalela.auth.dependencies import DbSession
from stalela.auth.permissions import Perm
from stalela.auth.principal import Principal
from stalela.dashboard.charts import bar_chart
from stalela.dashboard.service import visible_outlets
from stalela.dashboard.web import ID, CurrentViewer, DashboardRoute, need, opt, opt_day, render
from stalela.errors import NotFound, ValidationFailed
from stalela.i18n import Localizer, localizer

router = APIRouter(prefix="/app", route_class=DashboardRoute, include_in_schema=False)
NAME = re.compile(r"^(summary|taxes|types|outlets|buyers|authority|forecast)$")
TOP_BUYERS = 10
TREND_MONTHS = 6  # the home page's revenue trend


async def _window(request: Request, session: AsyncSession, principal: Principal, start_of: Any = None
                  ) -> tuple[analytics.Window, str]:
    q = request.query_params
    interval = q.get("interval") or "day"
    if interval not in INTERVALS:
        raise ValidationFailed("interval: day, week or month", code="validation_failed", field="interval")
    w = await analytics.window(session, principal, opt_day(q.get("from"), "from"), opt_day(q.get("to"), "to"),
                               opt(q.get("outlet_id"), ID, "outlet_id"),
                               start_of or analytics.SUMMARY_START[interval])
    return w, interval


def _label(l10n: Localizer, start: str, interval: str) -> str:
    return l10n.date(start, {"day": "d MMM", "week": "d MMM", "month": "MMM yyyy"}[interval])


def revenue_charts(summary: dict[str, Any], interval: str, l10n: Localizer, testid: str = "revenue-chart",
                   height: int = 240) -> list[tuple[str, Any]]:
    """One bar chart of revenue per period for each currency (currencies are never added together)."""
    charts = []
    for currency in summary["currencies"]:
        rows = [p for p in summary["periods"] if p["currency"] == currency]
        total = next(t for t in summary["totals"] if t["currency"] == currency)
        charts.append((currency, bar_chart(
            [_label(l10n, p["start"], interval) for p in rows], [Decimal(p["revenue"]) for p in rows],
            l10n.gettext("Revenue per period (%(currency)s)", currency=currency),
            l10n.gettext("%(count)s invoices, %(total)s %(currency)s in total.", count=total["invoices"],
                         total=total["revenue"], currency=currency),
            l10n.gettext("bars: revenue (%(currency)s), credit notes subtracted", currency=currency),
            f"{testid}-{currency.lower()}", height=height)))
    return charts


def forecast_charts(body: dict[str, Any], l10n: Localizer) -> list[tuple[str, Any]]:
    charts = []
    for f in body["data"]:
        if f["forecast"] is None:
            continue
        labels = [h["month"] for h in f["history"]][-12:] + [body["month"]]
        values = [Decimal(h["revenue"]) for h in f["history"]][-12:] + [Decimal(f["forecast"])]
        charts.append((f["currency"], bar_chart(
            labels, values, l10n.gettext("Revenue per month and the forecast (%(currency)s)", currency=f["currency"]),
            l10n.gettext("Forecast for %(month)s: %(amount)s %(currency)s.", month=body["month"],
                         amount=f["forecast"], currency=f["currency"]),
            l10n.gettext("last bar, outlined: the forecast"), f"forecast-chart-{f['currency'].lower()}",
            highlight_last=True)))
    return charts


def histogram_chart(body: dict[str, Any], l10n: Localizer) -> Any:
    seconds = body["seconds_to_acknowledgement"]
    labels = [f"≤{_duration(h['le'])}" if h["le"] is not None else f">{_duration(86_400)}" for h in seconds["histogram"]]
    return bar_chart(labels, [Decimal(h["count"]) for h in seconds["histogram"]],
                     l10n.gettext("Time from the seal to the acknowledgement"),
                     l10n.gettext("%(count)s acknowledged invoices.", count=body["acknowledged"]),
                     l10n.gettext("bars: invoices acknowledged within each time"), "ack-histogram", height=200)


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


@router.get("/analytics")
async def analytics_page(request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.REPORTS_READ)
    w, interval = await _window(request, session, viewer.principal)
    l10n = localizer(viewer.lang)
    summary = await analytics.summary(session, w, interval)
    authority = await analytics.authority(session, w)
    forecast = await analytics.forecast(session, w, "trend", 6)
    query = {"from": w.start.isoformat(), "to": w.end.isoformat(), "interval": interval,
             **({"outlet_id": w.outlet_id} if w.outlet_id else {})}
    return render(request, "analytics.html", w=w, interval=interval, query=query, summary=summary,
                  charts=revenue_charts(summary, interval, l10n), taxes=await analytics.taxes(session, w, "group"),
                  types=await analytics.types(session, w), outlets=await analytics.outlets(session, w),
                  buyers=await _buyers(request, session, viewer.principal, w),
                  authority=authority, histogram=histogram_chart(authority, l10n), forecast=forecast,
                  forecast_charts=forecast_charts(forecast, l10n),
                  choices=await visible_outlets(session, viewer.principal))


async def _buyers(request: Request, session: AsyncSession, principal: Principal, w: analytics.Window
                  ) -> dict[str, Any] | None:
    """Top buyers are the whole tenant's (whatever outlet the page shows); none for a restricted viewer."""
    if principal.restricted:
        return None
    return await analytics.buyers(session, request.app.state.settings, replace(w, outlet_id=None, outlets=None),
                                  TOP_BUYERS)


@router.get("/analytics/{name}.csv")
async def analytics_csv(name: str, request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.REPORTS_READ)
    if not NAME.fullmatch(name):
        raise NotFound("no such table", code="not_found")
    w, interval = await _window(request, session, viewer.principal,
                                month_start if name in ("buyers", "forecast") else None)
    if name == "summary":
        body = await analytics.summary(session, w, interval)
    elif name == "taxes":
        body = await analytics.taxes(session, w, "group")
    elif name == "types":
        body = await analytics.types(session, w)
    elif name == "outlets":
        body = await analytics.outlets(session, w)
    elif name == "buyers":
        body = await _buyers(request, session, viewer.principal, w)
        if body is None:
            raise NotFound("no such table", code="not_found")
    elif name == "authority":
        body = await analytics.authority(session, w)
    else:
        body = await analytics.forecast(session, w, "trend", 6)
    return Response(formats.to_csv(name, body), media_type=formats.MEDIA_TYPE,
                    headers={"Content-Disposition": f'attachment; filename="{formats.filename(name, body)}"'})


async def home_trend(session: AsyncSession, principal: Principal, l10n: Localizer) -> list[tuple[str, Any]]:
    """The home page's small revenue trend: the last months, one chart per currency (the analytics service's)."""
    w = await analytics.window(session, principal, None, None, None,
                               lambda end: add_months(end, -(TREND_MONTHS - 1)))
    return revenue_charts(await analytics.summary(session, w, "month"), "month", l10n, "home-trend", height=160)
