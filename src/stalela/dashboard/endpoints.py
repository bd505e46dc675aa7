"""The merchant console: sign-in, home, invoices and reports. Outlets, keys, users and webhooks are in
``admin_endpoints``; the operations console in ``ops_endpoints``. Routes only parse, check and render:
the work is done by the domains' services inside the request's transaction."""
from __future__ import annotations

import re
import secrets
from datetime import date
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response, StreamingResponse

from stalela.assistants import service as drafts
from stalela.auth import users
from stalela.auth.dependencies import DbSession, PublicRateLimit, client_ip
from stalela.auth.permissions import Perm
from stalela.dashboard import service
from stalela.dashboard.admin_endpoints import router as admin_router
from stalela.dashboard.analytics_endpoints import home_trend
from stalela.dashboard.analytics_endpoints import router as analytics_router
from stalela.dashboard.branding_endpoints import router as branding_router
from stalela.dashboard.device_endpoints import router as devices_router
from stalela.dashboard.connector_endpoints import router as connections_router
from stalela.dashboard.draft_endpoints import router as drafts_router
from stalela.dashboard.billing_endpoints import app_router as billing_app_router
from stalela.dashboard.billing_endpoints import ops_router as billing_ops_router
from stalela.dashboard.ops_endpoints import router as ops_router
from stalela.dashboard.ops_operator_endpoints import router as ops_operators_router
from stalela.dashboard.privacy_endpoints import app_router as privacy_app_router
from stalela.dashboard.privacy_endpoints import ops_router as privacy_ops_router
from stalela.dashboard.repository import DashboardRepository
from stalela.dashboard.settings_endpoints import router as settings_router
from stalela.dashboard.web import (
    CSRF_COOKIE,
    ID,
    REFRESH_COOKIE,
    CurrentViewer,
    DashboardRoute,
    check_csrf,
    end_session,
    need,
    opt,
    opt_day,
    page_language,
    posted,
    queue_cookie,
    read_form,
    redirect,
    render,
    start_session,
)
from stalela.errors import NotFound, ValidationFailed
from stalela.i18n import N_, localizer
from stalela.fiscal.invoices import service as invoices
from stalela.fiscal.invoices.schemas import InvoiceFilters
from stalela.fiscal.reports import jobs
from stalela.fiscal.reports import a_report, formats
from stalela.fiscal.reports import service as reports
from stalela.fiscal.reports.endpoints import _as as report_response
from stalela.fiscal.reports.endpoints import _stream as stream_a_report

router = APIRouter(prefix="/app", route_class=DashboardRoute, include_in_schema=False)
static_router = APIRouter(include_in_schema=False)
STATIC = Path(__file__).parent / "static"
TYPE = re.compile(r"^(?:[A-Z]{2}|[0-9]{1,3})$")  # the DRC's FV, FA...; ARCA's CbteTipo 1, 6, 13...
PAGE = 25
DRAFTS = 10  # the invoices page's "Drafts": the pending ones, then the latest decided


def _t(request: Request, message: str) -> str:
    """A message of a signed-out page in the visitor's language (the catalog's English msgid)."""
    return localizer(page_language(request)).gettext(message)


def _next_url(value: str | None) -> str:
    # Only a path inside the console: never an absolute or protocol-relative URL (open redirect).
    return value if value and value.startswith("/app") and not value.startswith("//") else "/app"


@static_router.get("/static/dashboard/{name}")
async def static_file(name: str) -> Response:
    if not re.fullmatch(r"[a-z0-9-]+\.(css|js|svg)", name) or not (STATIC / name).is_file():
        raise NotFound("no such file", code="not_found")
    return FileResponse(STATIC / name, headers={"Cache-Control": "public, max-age=3600",
                                                "X-Content-Type-Options": "nosniff"})


# --- sign in / out -------------------------------------------------------------------------------


def _login_page(request: Request, status: int = 200, **context):  # noqa: ANN003, ANN202
    csrf = request.cookies.get(CSRF_COOKIE)
    if not csrf:
        # The sign-in form has no session yet; a cookie of its own keeps other sites from posting it.
        csrf = secrets.token_urlsafe(24)
        queue_cookie(request, CSRF_COOKIE, csrf, path="/app", max_age=3600, always=True)
    return render(request, "login.html", status=status, csrf=csrf, next=_next_url(request.query_params.get("next")),
                  **context)


@router.get("/login", dependencies=[PublicRateLimit])
async def login_page(request: Request):
    return _login_page(request)


@router.post("/login", dependencies=[PublicRateLimit])
async def login(request: Request, session: DbSession):
    form = await read_form(request)
    check_csrf(request, form, request.cookies.get(CSRF_COOKIE, ""))
    settings, limiter = request.app.state.settings, request.app.state.limiter
    email, password = form.get("email", "").strip(), form.get("password", "")
    tenant_id = opt(form.get("tenant_id"), ID, "tenant_id")
    ip = client_ip(request) or "unknown"
    keys = [f"login:acct:{users.normalize_email(email)}", f"login:ip:{ip}"]
    for key in keys:  # the same throttle as POST /v1/auth/login
        if await limiter.failures(key) >= settings.login_max_failures:
            return _login_page(request, 429, email=email, error=_t(request, N_("Too many failed sign-ins. Try again later.")))
    if not email or not password:
        return _login_page(request, 400, email=email, error=_t(request, N_("Enter your email and password.")))
    result, ambiguous = await users.login(request.app.state.db, settings, session, email, password, tenant_id, ip)
    if ambiguous:
        return _login_page(request, 409, email=email, tenants=[(t.id, t.name) for _, t in ambiguous],
                           error=_t(request, N_("This email belongs to several accounts: choose one.")))
    if result is None:
        for key in keys:
            await limiter.fail(key)
        return _login_page(request, 401, email=email, error=_t(request, N_("Wrong email or password.")))
    await limiter.clear(keys[0])
    start_session(request, result)
    return redirect(_next_url(form.get("next")))


@router.post("/logout")
async def logout(request: Request, session: DbSession, viewer: CurrentViewer):
    await posted(request, viewer)
    await users.logout(session, request.cookies.get(REFRESH_COOKIE, ""))
    end_session(request)
    return redirect("/app/login")


@router.get("/accept", dependencies=[PublicRateLimit])
async def accept_page(request: Request, token: str = ""):
    csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
    queue_cookie(request, CSRF_COOKIE, csrf, path="/app", max_age=3600)
    return render(request, "accept.html", token=token, csrf=csrf)


@router.post("/accept", dependencies=[PublicRateLimit])
async def accept(request: Request, session: DbSession):
    """Redeem an invitation: the token is the credential; then sign in as usual."""
    form = await read_form(request)
    check_csrf(request, form, request.cookies.get(CSRF_COOKIE, ""))
    if form.get("password", "") != form.get("password2", ""):
        raise ValidationFailed("the two passwords differ", code="password_mismatch", field="password2")
    user = await users.accept(session, request.app.state.settings, form.get("token", "").strip(),
                              form.get("password", ""))
    return redirect(f"/app/login?next=/app&email={user.email}")


# --- home and invoices ---------------------------------------------------------------------------


@router.get("")
async def home(request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.INVOICES_READ)
    steps = await service.onboarding(session, viewer.jurisdiction) if viewer.can("admin") else []
    l10n = localizer(viewer.lang)
    # The revenue of the last months, from the analytics service (who may read reports may read it).
    trend = await home_trend(session, viewer.principal, l10n) if viewer.can("reports:read") else []
    return render(request, "home.html", home=await service.home(session, viewer.principal, l10n), steps=steps,
                  trend=trend)


@router.get("/invoices")
async def invoice_list(request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.INVOICES_READ)
    q = request.query_params
    day_from, day_to = opt_day(q.get("from"), "from"), opt_day(q.get("to"), "to")
    lo, hi = service.day_bounds(day_from, day_to)
    filters = InvoiceFilters(outlet_id=opt(q.get("outlet_id"), ID, "outlet_id"), type=opt(q.get("type"), TYPE, "type"),
                             fiscal_number=opt(q.get("fiscal_number"), re.compile(r"^[A-Za-z0-9_./-]{1,64}$"),
                                               "fiscal_number"),
                             issued_at_gte=lo, issued_at_lt=hi)
    status = q.get("status") or None
    if status is not None and status not in service.SYNC_STATUSES:
        raise ValidationFailed(f"status: one of {', '.join(service.SYNC_STATUSES)}", code="invalid_parameter",
                               field="status")
    after = opt(q.get("after"), ID, "after")
    rows, more = await service.invoice_page(session, viewer.principal, filters, status, limit=PAGE,
                                            starting_after=after)
    outlets = await service.visible_outlets(session, viewer.principal)
    params = {k: v for k, v in q.items() if k != "after" and v}
    # Drafts waiting for a person first (an assistant's too: approving one is done from its page).
    recent = await drafts.recent_drafts(session, viewer.principal, DRAFTS) if viewer.can("invoices:draft") else []
    return render(request, "invoices.html", rows=rows, more=more, outlets=outlets, drafts=recent,
                  codes={o.id: o.code for o in outlets}, zones={o.id: o.timezone for o in outlets}, params=params,
                  statuses=service.SYNC_STATUSES,
                  next_after=rows[-1]["id"] if rows and more else None, first_page=after is None)


@router.get("/invoices/{invoice_id}")
async def invoice_page(invoice_id: str, request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.INVOICES_READ)
    detail = await service.invoice_detail(session, request.app.state.settings, viewer.principal,
                                          opt(invoice_id, ID, "invoice_id"))
    return render(request, "invoice.html", **detail)


@router.get("/invoices/{invoice_id}/pdf")
async def invoice_pdf(invoice_id: str, request: Request, session: DbSession, viewer: CurrentViewer,
                      layout: str | None = None, lang: str | None = None):
    need(viewer, Perm.INVOICES_READ)
    name, content = await invoices.invoice_pdf(session, request.app.state.settings, viewer.principal,
                                               opt(invoice_id, ID, "invoice_id"), layout=layout,
                                               lang=lang or viewer.lang or None)
    return Response(content, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


# --- reports -------------------------------------------------------------------------------------


@router.get("/reports")
async def reports_page(request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.REPORTS_READ)
    outlets = await service.visible_outlets(session, viewer.principal)
    zs, _ = await reports.list_z(session, viewer.principal, outlet_id=None, day_gte=None, day_lt=None, limit=20,
                                 starting_after=None)
    exports = await DashboardRepository(session).recent_exports() if viewer.can("exports") else []
    return render(request, "reports.html", outlets=outlets, zs=zs, codes={o.id: o.code for o in outlets},
                  zones={o.id: o.timezone for o in outlets},
                  exports=[jobs.render_job(j) for j in exports], today=date.today().isoformat(),
                  month_start=date.today().replace(day=1).isoformat())


@router.post("/reports/close")
async def close_day(request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.REPORTS_WRITE)
    form = await posted(request, viewer)
    outlet_id = opt(form.get("outlet_id"), ID, "outlet_id")
    result = await reports.close_day(session, request.app.state.settings, viewer.principal, outlet_id or "",
                                     opt_day(form.get("business_day"), "business_day"), closed_by="api")
    return redirect(f"/app/reports/z/{result.z.id}?{'closed' if result.created else 'already'}=1")


@router.get("/reports/z/{z_id}")
async def z_page(z_id: str, request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.REPORTS_READ)
    z = await reports.get_z(session, viewer.principal, opt(z_id, ID, "z_id"))
    return render(request, "report.html", report=reports.render_z(request.app.state.settings, z), kind="Z",
                  base=f"/app/reports/z/{z.id}")


@router.get("/reports/z/{z_id}/download")
async def z_download(z_id: str, request: Request, session: DbSession, viewer: CurrentViewer, format: str = "pdf"):
    need(viewer, Perm.REPORTS_READ)
    if format not in formats.MEDIA_TYPES:
        raise ValidationFailed("format: pdf, csv, xlsx or json", code="invalid_format", field="format")
    z = await reports.get_z(session, viewer.principal, opt(z_id, ID, "z_id"))
    return await report_response(session, reports.render_z(request.app.state.settings, z), format,
                                 lang=viewer.lang or None)


@router.get("/reports/x/{outlet_id}")
async def x_page(outlet_id: str, request: Request, session: DbSession, viewer: CurrentViewer, format: str = "html"):
    need(viewer, Perm.REPORTS_READ)
    report = await reports.x_report(session, request.app.state.settings, viewer.principal,
                                    opt(outlet_id, ID, "outlet_id"))
    if format in formats.MEDIA_TYPES:
        return await report_response(session, report, format, lang=viewer.lang or None)
    return render(request, "report.html", report=report, kind="X", base=f"/app/reports/x/{outlet_id}")


@router.get("/reports/a")
async def a_download(request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.REPORTS_READ)
    q = request.query_params
    day_from, day_to, fmt = opt_day(q.get("from"), "from"), opt_day(q.get("to"), "to"), q.get("format", "csv")
    if day_from is None or day_to is None:
        raise ValidationFailed("give the first and last business day", code="invalid_range", field="from")
    outlet_id = opt(q.get("outlet_id"), ID, "outlet_id")
    report = await a_report.prepare(session, request.app.state.settings, viewer.principal, outlet_id=outlet_id,
                                    day_from=day_from, day_to=day_to, fmt=fmt)
    scope = report.outlets[report.outlet_id].code if report.outlet_id else "all"
    return StreamingResponse(stream_a_report(request.app.state.db, report, fmt), media_type=formats.MEDIA_TYPES[fmt],
                             headers={"Content-Disposition":
                                      f'attachment; filename="a-report-{scope}-{day_from}-{day_to}.{fmt}"'})


@router.post("/reports/exports")
async def request_export(request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.EXPORTS)
    form = await posted(request, viewer)
    job = await jobs.request_export(session, viewer.principal.tenant_id, opt_day(form.get("from"), "from"),
                                    opt_day(form.get("to"), "to"), viewer.principal.actor)
    return redirect(f"/app/reports?export={job.id}#exports")


@router.get("/reports/exports/{export_id}")
async def export_status(export_id: str, session: DbSession, viewer: CurrentViewer):
    """Polled by the progress bar (static/app.js)."""
    need(viewer, Perm.EXPORTS)
    job = jobs.render_job(await jobs.get_export(session, opt(export_id, ID, "export_id")))
    job["download_url"] = f"/app/reports/exports/{job['id']}/download" if job["status"] == "ready" else None
    return job


@router.get("/reports/exports/{export_id}/download")
async def export_download(export_id: str, request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.EXPORTS)
    job = await jobs.get_export(session, opt(export_id, ID, "export_id"))
    path = jobs.ready_file(request.app.state.settings, job)
    return FileResponse(path, media_type="application/gzip", filename=f"stalela-audit-{job.id}.tar.gz")


routers = [static_router, router, settings_router, branding_router, admin_router, devices_router, drafts_router,
           connections_router, analytics_router, ops_router,
           ops_operators_router,
           privacy_app_router, privacy_ops_router,
           billing_app_router, billing_ops_router]
