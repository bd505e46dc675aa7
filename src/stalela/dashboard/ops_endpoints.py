"""The operations console (/ops): sign-in (operator users' e-mail and password, single sign-on, or the
static ``STALELA_OPERATOR_TOKEN``), pipeline, authority sync, tenants and webhook health. Sessions read
across tenants (platform binding); the ``support`` role reads only (``web._operator``)."""
from __future__ import annotations

import re
import secrets
from datetime import timedelta

import httpx
from fastapi import APIRouter, Request

from stalela.audit import platform as platform_audit
from stalela.auth.dependencies import DbSession, PublicRateLimit, client_ip
from stalela.auth.users import normalize_email
from stalela.controlplane import oidc, operator_service
from stalela.dashboard import pipeline, service
from stalela.dashboard.charts import sparkline
from stalela.dashboard.repository import DashboardRepository
from stalela.dashboard.web import (
    ID,
    OPS_COOKIE,
    CurrentOperator,
    DashboardRoute,
    OPS_SESSION_SECONDS,
    check_csrf,
    token_login,
    user_login,
    opt,
    posted,
    queue_cookie,
    read_form,
    redirect,
    render,
)
from stalela.errors import NotFound, ValidationFailed
from stalela.health.fleet import health_of
from stalela.migrations import head_revisions
from stalela.outbox import service as outbox
from stalela.accounts import service as tenancy
from stalela.controlplane import service as registry

router = APIRouter(prefix="/ops", route_class=DashboardRoute, include_in_schema=False)
TOPIC = re.compile(r"^[a-z0-9_.]{1,64}$")
BURST = re.compile(r"^[0-9]{1,9}$")  # parsed here; its bounds are the service's
SURVEY_PER_VIEW = 25  # dedicated databases checked per page view (the rest show their last check)
SESSION = timedelta(seconds=OPS_SESSION_SECONDS)
OIDC_TIMEOUT = 10.0


LOGIN_CSRF = "stalela_ops_login"  # the sign-in forms' CSRF token, before there is a session
FLOW_COOKIE = "stalela_ops_oidc"  # the OpenID Connect attempt in flight (controlplane.oidc)


def _login_page(request: Request, status: int = 200, **context):  # noqa: ANN003, ANN202
    csrf = request.cookies.get(LOGIN_CSRF)
    if not csrf:
        csrf = secrets.token_urlsafe(24)
        queue_cookie(request, LOGIN_CSRF, csrf, path="/ops", max_age=3600, samesite="strict", always=True)
    settings = request.app.state.settings
    return render(request, "ops_login.html", status=status, csrf=csrf, viewer=None,
                  token_enabled=settings.operator_token is not None, oidc_enabled=settings.oidc_enabled, **context)


@router.get("/login", dependencies=[PublicRateLimit])
async def login_page(request: Request):
    return _login_page(request)


@router.post("/login", dependencies=[PublicRateLimit])
async def login(request: Request, session: DbSession):
    """An operator's e-mail and password, or the static operator token (automation, break-glass)."""
    form = await read_form(request)
    check_csrf(request, form, request.cookies.get(LOGIN_CSRF, ""))
    settings, limiter, ip = request.app.state.settings, request.app.state.limiter, client_ip(request)
    email, token = form.get("email", "").strip(), form.get("token", "")
    keys = [f"ops-login:ip:{ip or 'unknown'}"] + ([f"ops-login:acct:{normalize_email(email)}"] if email else [])
    for key in keys:  # the same throttle as the tenants' sign-in
        if await limiter.failures(key) >= settings.login_max_failures:
            return _login_page(request, 429, email=email, error="Too many failed sign-ins. Try again later.")
    if token and not email:
        if token_login(request, token):
            await platform_audit.record(session, "operator:token", "operator.login", None, {"method": "token"}, ip=ip)
            return redirect("/ops")
        await platform_audit.record(session, "anonymous", "operator.login_failed", None, {"method": "token"}, ip=ip)
        await limiter.fail(keys[0])
        return _login_page(request, 401, error="Invalid operator token.")
    op = await operator_service.password_login(session, settings, email, form.get("password", ""), ip)
    if op is None:
        for key in keys:
            await limiter.fail(key)
        if email and await limiter.failures(keys[-1]) == settings.login_max_failures:
            await operator_service.record_lockout(session, email, ip)
        return _login_page(request, 401, email=email, error="Wrong email or password.")
    await limiter.clear(keys[-1])
    user_login(request, await operator_service.start_session(session, op, "password", SESSION, ip))
    return redirect("/ops")


@router.get("/oidc/start")
async def oidc_start(request: Request):
    settings = request.app.state.settings
    if not settings.oidc_enabled:
        raise NotFound("single sign-on is not configured", code="oidc_disabled")
    async with httpx.AsyncClient(timeout=OIDC_TIMEOUT) as http:
        url, flow = oidc.begin(settings, await oidc.provider(settings, http))
    # Lax: the provider's redirect back is a cross-site navigation, which a Strict cookie would miss.
    queue_cookie(request, FLOW_COOKIE, flow, path="/ops/oidc", max_age=oidc.FLOW_SECONDS)
    return redirect(url)


@router.get("/oidc/callback")
async def oidc_callback(request: Request, session: DbSession):
    settings = request.app.state.settings
    if not settings.oidc_enabled:
        raise NotFound("single sign-on is not configured", code="oidc_disabled")
    params = {k: v for k, v in request.query_params.items() if k in ("state", "code", "error")}
    queue_cookie(request, FLOW_COOKIE, None, path="/ops/oidc", always=True)  # one attempt, one answer
    ip = client_ip(request)
    try:
        async with httpx.AsyncClient(timeout=OIDC_TIMEOUT) as http:
            claims = await oidc.complete(settings, http, request.cookies.get(FLOW_COOKIE, ""), params)
    except oidc.OidcRefused as exc:
        # Answered, not raised: the refusal's audit entry commits with this request.
        await platform_audit.record(session, "anonymous", "operator.login_failed", None,
                                    {"method": "oidc", "code": exc.code}, ip=ip)
        return render(request, "error.html", status=exc.status, viewer=None, title=exc.title, detail=exc.detail,
                      back="/ops/login")
    op = await operator_service.oidc_operator(session, claims["iss"], claims, ip)
    if op is None:
        return render(request, "error.html", status=403, viewer=None, title="Single sign-on refused",
                      detail="This identity is not an active operator of this platform.", back="/ops/login")
    user_login(request, await operator_service.start_session(session, op, "oidc", SESSION, client_ip(request)))
    # A page, not a redirect: the session cookie is SameSite=Strict, and a redirect chain that began at
    # the provider's site would not carry it; a navigation from this page does.
    return render(request, "ops_signed_in.html", viewer=None)


@router.post("/logout")
async def logout(request: Request, session: DbSession, operator: CurrentOperator):
    await posted(request, operator)
    raw, ip = request.cookies.get(OPS_COOKIE, ""), client_ip(request)
    if operator.principal.user_id:
        op = await operator_service.get_operator(session, operator.principal.user_id)
        await operator_service.end_session(session, op, raw, ip)
    else:
        await platform_audit.record(session, "operator:token", "operator.logout", None, ip=ip)
    queue_cookie(request, OPS_COOKIE, None, path="/ops", samesite="strict")
    return redirect("/ops/login")


@router.get("")
async def pipeline_page(request: Request, session: DbSession, operator: CurrentOperator):
    topic = opt(request.query_params.get("topic"), TOPIC, "topic")
    after = opt(request.query_params.get("after"), ID, "after")
    rates = await pipeline.pipeline_rates(request.app)
    stats, dead, more = await service.outbox_overview(session, topic, after)
    return render(request, "ops_pipeline.html", rates=rates, stats=stats, dead=dead, more=more, topic=topic,
                  trend=sparkline(rates.trend, "seals per minute over the last samples"),
                  replayed=request.query_params.get("replayed"))


@router.post("/dead/replay")
async def replay(request: Request, session: DbSession, operator: CurrentOperator):
    form = await posted(request, operator)
    ids = [i for i in form.all("ids") if ID.match(i)]
    topic = opt(form.get("topic"), TOPIC, "topic")
    if not ids and not topic:
        raise ValidationFailed("choose dead letters to replay", code="replay_target_required", field="ids")
    count = await outbox.replay(session, ids or None, None if ids else topic, actor=operator.principal.platform_actor)
    return redirect(f"/ops?replayed={count}")


@router.get("/sync")
async def sync_page(request: Request, session: DbSession, operator: CurrentOperator):
    return render(request, "ops_sync.html", rows=await service.sync_overview(session),
                  arca=await service.arca_overview(session))


async def _tenants_page(request: Request, session: DbSession, status: int = 200, **context):  # noqa: ANN003, ANN202
    rows = await DashboardRepository(session).tenants()
    settings = request.app.state.settings
    limits = {t.id: tenancy.tenant_limits(t, settings) for t, _, _ in rows}
    where = await registry.overview(session, [t for t, _, _ in rows])
    return render(request, "ops_tenants.html", status=status, rows=rows, limits=limits, where=where,
                  webhooks=await service.webhook_health(session), **context)


@router.get("/tenants")
async def tenants_page(request: Request, session: DbSession, operator: CurrentOperator):
    return await _tenants_page(request, session, saved=opt(request.query_params.get("limits"), ID, "limits"))


# Before ``/tenants/{tenant_id}/{action}``, which would take "limits" for an action.
@router.post("/tenants/{tenant_id}/limits")
async def tenant_limits(tenant_id: str, request: Request, session: DbSession, operator: CurrentOperator):
    """Set a tenant's API rate limit, or (``reset``) give it the defaults back. Bad numbers are shown
    beside the form, with what was typed."""
    form = await posted(request, operator)
    tenant_id = opt(tenant_id, ID, "tenant_id")
    reset = "reset" in form
    rate, burst = (None, None) if reset else (form.text("rate_limit_per_second"), form.text("rate_limit_burst"))
    try:
        if burst is not None and not BURST.match(burst):
            raise ValidationFailed("rate_limit_burst: a whole number", code="rate_limit_invalid",
                                   field="rate_limit_burst")
        await tenancy.set_tenant_limits(session, tenant_id, rate, None if burst is None else int(burst))
    except ValidationFailed as exc:
        typed = {"rate_limit_per_second": rate or "", "rate_limit_burst": burst or ""}
        return await _tenants_page(request, session, 422, limit_error={"tenant_id": tenant_id, "field": exc.field,
                                                                       "detail": exc.detail, "typed": typed})
    return redirect(f"/ops/tenants?limits={tenant_id}")


@router.post("/tenants/{tenant_id}/{action}")
async def tenant_status(tenant_id: str, action: str, request: Request, session: DbSession,
                        operator: CurrentOperator):
    await posted(request, operator)
    status = {"suspend": "suspended", "activate": "active"}.get(action)
    if status is None:
        raise ValidationFailed("action: suspend or activate", code="invalid_parameter", field="action")
    await tenancy.set_tenant_status(session, opt(tenant_id, ID, "tenant_id"), status,
                                    actor=operator.principal.platform_actor)
    return redirect("/ops/tenants")


@router.get("/databases")
async def databases_page(request: Request, operator: CurrentOperator):
    """Every database of the fleet: the control plane and each dedicated one, its revision against head, this
    process's pool and the last check."""
    rows = await health_of(request.app.state.db).survey(SURVEY_PER_VIEW)
    return render(request, "ops_databases.html", rows=rows, head=",".join(head_revisions()),
                  held=request.app.state.db.fleet.connections())
