"""The Usage & billing pages of both consoles: the tenant's usage, estimate, quotas, bills and anomalies
(/app/billing), and the operator's revenue per tenant and open anomalies (/ops/billing). Over the billing
domain's services: acknowledging here is the same use case as the API's, and every figure is the one the
API answers (the bills' own rounding, the usage service's daily aggregates)."""
from __future__ import annotations

import re
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from jinja2 import Environment, pass_environment
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.auth.dependencies import DbSession
from stalela.auth.permissions import Perm
from stalela.billing import anomaly_service, bill_service, quotas, rating_service, resources, usage_service
from stalela.billing import bill_lines
from stalela.billing.usage_math import day_of
from stalela.config import Settings
from stalela.dashboard.charts import DayQuantity, daily_quantity_chart
from stalela.dashboard.web import (
    ID, CurrentOperator, CurrentViewer, DashboardRoute, need, opt, page_language, posted, redirect, render, templates,
)
from stalela.db.base import utcnow
from stalela.errors import NotFound, StalelaError, ValidationFailed
from stalela.i18n import Localizer, localizer
from stalela.i18n.problems import localize
from stalela.tenancy.context import bind_tenant

app_router = APIRouter(prefix="/app", route_class=DashboardRoute, include_in_schema=False)
ops_router = APIRouter(prefix="/ops", route_class=DashboardRoute, include_in_schema=False)

# The API's rules, in one place for both consoles: reading usage, quotas, bills and anomalies; acting on
# anomalies (billing/anomaly_endpoints.py).
READ = Perm.USAGE_READ
MANAGE = Perm.BILLING_MANAGE
DAYS = 30  # the chart's window, today included
SHOWN_BILLS = 24  # two years of monthly bills
SHOWN_ANOMALIES = 100
ACTIONS = {"acknowledge": "acknowledged", "dismiss": "dismissed"}
RESOURCE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
PERIOD = re.compile(bill_lines.PERIOD_PATTERN)
NNBSP = "\u202f"  # narrow no-break space: "19 640.29" never wraps and reads the same in every locale


def grouped(value: Any) -> str:
    """A decimal (string, Decimal or int) with its digits as given and thousands grouped by U+202F."""
    if value is None or value == "":
        return "—"
    text = format(value, "f") if isinstance(value, Decimal) else str(value)
    sign, text = ("-", text[1:]) if text.startswith("-") else ("", text)
    whole, dot, frac = text.partition(".")
    return f"{sign}{int(whole):,}".replace(",", NNBSP) + dot + frac


@pass_environment
def quantity(env: Environment, value: Any) -> str:
    """A decimal with exactly the digits it was given (a resource's scale: "0.000000" stays six places),
    in the page's language: "12 345,500000" (fr, U+202F never wraps), "12,345.500000" (en)."""
    if value is None or value == "":
        return "—"
    text = format(value, "f") if isinstance(value, Decimal) else str(value)
    return env.globals["i18n"].number(text, len(text.partition(".")[2]))


templates.update(filters=dict(grouped=grouped, quantity=quantity), globals=dict(usage_chart=daily_quantity_chart))


# --- the merchant console ----------------------------------------------------------------------------


@app_router.get("/billing")
async def billing_page(request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, READ)
    settings = request.app.state.settings
    tenant_id = viewer.principal.tenant_id
    registry = resources.all_resources(settings)
    chosen = opt(request.query_params.get("resource"), RESOURCE, "resource")
    if chosen is not None and chosen not in registry:
        raise ValidationFailed(f"resource: no resource {chosen!r}", code="unknown_resource", field="resource")
    usage = await _usage(session, tenant_id, registry, chosen)
    done = request.query_params.get("done")
    # Anomaly impacts are priced in the plan's currency (the field is named impact_eur: EUR by default).
    plan = await rating_service.get_plan(session, (await rating_service.account(session, tenant_id)).plan_id)
    estimate = await _estimate(session, localizer(page_language(request)))
    return render(request, "billing.html", usage=usage, units={n: r.unit for n, r in registry.items()},
                  manage=MANAGE in viewer.perms, plan_currency=plan.currency,
                  estimate=estimate, quotas=await _quotas(session, settings, tenant_id),
                  bills=await _bills(session, settings, tenant_id), anomalies=await _anomalies(session),
                  done=done if done in ACTIONS.values() else None,
                  done_id=opt(request.query_params.get("anomaly"), ID, "anomaly"))


async def _usage(session: AsyncSession, tenant_id: str, registry: dict[str, resources.Resource],
                 chosen: str | None) -> dict[str, Any]:
    """The last DAYS days of every resource, and the chosen one's series (default: the first with usage)."""
    names = list(registry)
    today = day_of(usage_service.clock.now())
    first = today - timedelta(days=DAYS - 1)
    rows = await usage_service.daily(session, tenant_id, None, first, today + timedelta(days=1))
    by_day: dict[str, dict[Any, Decimal]] = {}
    for row in rows:
        by_day.setdefault(row.resource, {})[row.day] = row.quantity
    used = [n for n in names if any(by_day.get(n, {}).values())]
    resource = chosen or (used[0] if used else names[0])
    days = [first + timedelta(days=i) for i in range(DAYS)]
    zero = registry[resource].from_units(0)  # a day without usage, at the resource's scale like the others
    series = [DayQuantity(d, by_day.get(resource, {}).get(d, zero)) for d in days]
    return {"resource": resource, "names": names, "used": used, "series": series, "first": first, "last": today,
            "total": sum((p.quantity for p in series), zero)}


async def _estimate(session: AsyncSession, l10n: Localizer) -> dict[str, Any]:
    """The period so far, or why there is none (no rate card in force, billing not set up): the rest of
    the page is still worth showing. The estimate reads before it could fail, so the transaction is intact.
    The reason in the reader's language (its code as it is)."""
    try:
        return {"ok": True, **await bill_service.estimate(session)}
    except StalelaError as exc:
        _, detail = localize(l10n, code=exc.code, title=exc.title, detail=exc.detail)
        return {"ok": False, "code": exc.code, "detail": detail}


async def _quotas(session: AsyncSession, settings: Settings, tenant_id: str) -> dict[str, Any]:
    report = await quotas.report(session, settings, tenant_id)
    for row in report["data"]:
        cap, used = Decimal(row["cap"]), Decimal(row["used"])
        share = used / cap * 100 if cap > 0 else Decimal(100 if used > 0 else 0)
        row["percent"] = int(min(share, Decimal(100)).to_integral_value(ROUND_DOWN))
        row["over"] = used >= cap
    return report


async def _bills(session: AsyncSession, settings: Settings, tenant_id: str) -> list[dict[str, Any]]:
    """The latest bills, each sealed one with its invoice's fiscal number. The invoice belongs to the issuer
    and is read by the service on the platform binding; the tenant's binding is restored after each."""
    rows, _ = await bill_service.list_bills(session, limit=SHOWN_BILLS, starting_after=None)
    for row in rows:
        row["fiscal_number"] = None
        if row["invoice_id"]:
            try:
                found = await bill_service.bill_with_invoice(session, settings, row["id"])
            finally:
                await bind_tenant(session, tenant_id)
            row["fiscal_number"] = (found.get("invoice") or {}).get("fiscal_number")
    return rows


async def _anomalies(session: AsyncSession) -> list[dict[str, Any]]:
    """Those still to handle: open ones (acknowledge or dismiss), then acknowledged ones (dismiss)."""
    out = []
    for status in ("open", "acknowledged"):
        rows, _ = await anomaly_service.list_anomalies(session, status, limit=SHOWN_ANOMALIES, starting_after=None)
        out += rows
    return out


@app_router.post("/billing/anomalies/{anomaly_id}/{action}")
async def anomaly_action(anomaly_id: str, action: str, request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, MANAGE)
    await posted(request, viewer)
    status = ACTIONS.get(action)
    if status is None:
        raise NotFound("no such action", code="not_found")
    anomaly_id = opt(anomaly_id, ID, "anomaly_id") or ""
    await anomaly_service.set_status(session, viewer.principal, anomaly_id, status)
    return redirect(f"/app/billing?done={status}&anomaly={anomaly_id}#anomalies")


@app_router.get("/billing/invoices/{bill_id}/pdf")
async def bill_pdf(bill_id: str, request: Request, session: DbSession, viewer: CurrentViewer):
    """The console's twin of ``GET /v1/billing/invoices/{id}/pdf``: the same service, the session's rights."""
    need(viewer, READ)
    name, content = await bill_service.bill_pdf(session, request.app.state.settings, opt(bill_id, ID, "bill_id") or "")
    return Response(content, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


# --- the operations console --------------------------------------------------------------------------


@ops_router.get("/billing")
async def ops_billing_page(request: Request, session: DbSession, operator: CurrentOperator):
    period = opt(request.query_params.get("period"), PERIOD, "period") \
        or bill_lines.previous_period(bill_lines.period_of(utcnow()))
    rows = await bill_service.revenue(session, period)
    sums: dict[str, Decimal] = {}
    for row in rows:
        sums[row["currency"]] = sums.get(row["currency"], Decimal(0)) + Decimal(row["total"])
    try:
        issuer = await bill_service.get_issuer(session)
    except NotFound:
        issuer = None
    anomalies, more = await anomaly_service.list_anomalies(session, "open", limit=SHOWN_ANOMALIES,
                                                           starting_after=None)
    return render(request, "ops_billing.html", period=period, rows=rows,
                  sums=[(c, f"{s:.2f}") for c, s in sorted(sums.items()) if c], issuer=issuer,
                  anomalies=anomalies, more_anomalies=more,
                  previous=bill_lines.previous_period(period), next=bill_lines.previous_period(period, -1))
