"""The operations console (/ops): sign-in (operator users' e-mail and password, single sign-on, or the
static ``STALELA_OPERATOR_TOKEN``), pipeline, authority sync, tenants (registering one too) and webhook
health. Sessions read across tenants (platform binding); the ``support`` role reads only
(``web._operator``). Pages speak the operator's language (``operator_users.locale``), else the browser's."""
from __future__ import annotations

import re
import secrets
from datetime import timedelta
from typing import Any, get_args

import httpx
from fastapi import APIRouter, Request
from pydantic import ValidationError

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
    page_language,
    templates,
    token_login,
    user_login,
    opt,
    posted,
    queue_cookie,
    read_form,
    redirect,
    render,
)
from stalela.errors import NotFound, StalelaError, ValidationFailed, validation_problem
from stalela.fiscal.jurisdictions import jurisdiction_codes
from stalela.fiscal.jurisdictions.labels import vat_condition_text
from stalela.i18n import N_, Localizer, localizer, normalize, tenant_language
from stalela.i18n.problems import localize
from stalela.health.fleet import health_of
from stalela.migrations import head_revisions
from stalela.outbox import service as outbox
from stalela.accounts import service as tenancy
from stalela.accounts.schemas import VatCondition
from stalela.controlplane import schemas as registry_schemas
from stalela.controlplane import service as registry

router = APIRouter(prefix="/ops", route_class=DashboardRoute, include_in_schema=False)
TOPIC = re.compile(r"^[a-z0-9_.]{1,64}$")
BURST = re.compile(r"^[0-9]{1,9}$")  # parsed here; its bounds are the service's
SURVEY_PER_VIEW = 25  # dedicated databases checked per page view (the rest show their last check)
SESSION = timedelta(seconds=OPS_SESSION_SECONDS)
OIDC_TIMEOUT = 10.0


LOGIN_CSRF = "stalela_ops_login"  # the sign-in forms' CSRF token, before there is a session
FLOW_COOKIE = "stalela_ops_oidc"  # the OpenID Connect attempt in flight (controlplane.oidc)
FORM_KEY = "ops-console:"  # the create-tenant form's idempotency keys, apart from API clients' own
VAT_CONDITIONS = get_args(VatCondition)  # the form's choices are the API's
# The create-tenant form's fields by the name the service gives a bad one (ar.vat_condition is the form's
# vat_condition); shown before the error's sentence.
FIELD_LABELS = {"name": N_("Name"), "tax_id": N_("Tax id"), "jurisdiction": N_("Jurisdiction"),
                "ar.vat_condition": N_("IVA condition"), "tier": N_("Tier"), "locale": N_("Language"),
                "target": N_("Server")}




def _l10n(request: Request) -> Localizer:
    return localizer(page_language(request))


def _login_page(request: Request, status: int = 200, **context):  # noqa: ANN003, ANN202
    csrf = request.cookies.get(LOGIN_CSRF)
    if not csrf:
        csrf = secrets.token_urlsafe(24)
        queue_cookie(request, LOGIN_CSRF, csrf, path="/ops", max_age=3600, samesite="strict", always=True)
    settings = request.app.state.settings
    return render(request, "ops_login.html", status=status, csrf=csrf, viewer=None,
                  lang_param=normalize(request.query_params.get("lang")),
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
            return _login_page(request, 429, email=email,
                               error=_l10n(request).gettext("Too many failed sign-ins. Try again later."))
    if token and not email:
        if token_login(request, token):
            await platform_audit.record(session, "operator:token", "operator.login", None, {"method": "token"}, ip=ip)
            return redirect("/ops")
        await platform_audit.record(session, "anonymous", "operator.login_failed", None, {"method": "token"}, ip=ip)
        await limiter.fail(keys[0])
        return _login_page(request, 401, error=_l10n(request).gettext("Invalid operator token."))
    op = await operator_service.password_login(session, settings, email, form.get("password", ""), ip)
    if op is None:
        for key in keys:
            await limiter.fail(key)
        if email and await limiter.failures(keys[-1]) == settings.login_max_failures:
            await operator_service.record_lockout(session, email, ip)
        return _login_page(request, 401, email=email, error=_l10n(request).gettext("Wrong email or password."))
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
        title, detail = localize(_l10n(request), code=exc.code, title=exc.title, detail=exc.detail)
        return render(request, "error.html", status=exc.status, viewer=None, title=title, detail=detail,
                      back="/ops/login")
    op = await operator_service.oidc_operator(session, claims["iss"], claims, ip)
    if op is None:
        l10n = _l10n(request)
        return render(request, "error.html", status=403, viewer=None, title=l10n.gettext("Single sign-on refused"),
                      detail=l10n.gettext("This identity is not an active operator of this platform."),
                      back="/ops/login")
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
                  trend=sparkline(rates.trend, _l10n(request).gettext("seals per minute over the last samples")),
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
    languages = {t.id: tenant_language(t.locale, t.jurisdiction) for t, _, _ in rows}
    # A fresh key with every rendering of the form: posting that form twice is one request.
    return render(request, "ops_tenants.html", status=status, rows=rows, limits=limits, where=where,
                  languages=languages, webhooks=await service.webhook_health(session),
                  new_tenant_key=secrets.token_urlsafe(18), jurisdictions=sorted(jurisdiction_codes()),
                  vat_conditions=[(c, vat_condition_text(c)) for c in VAT_CONDITIONS], **context)


def _form_error(request: Request, exc: StalelaError) -> dict[str, str | None]:
    """A refusal shown beside a form, in the page's language: the field's name and why."""
    l10n = _l10n(request)
    _, detail = localize(l10n, code=exc.code, title=exc.title, detail=exc.detail)
    label = FIELD_LABELS.get(exc.field or "")
    return {"field": exc.field, "label": l10n.gettext(label) if label else exc.field, "detail": detail,
            "code": exc.code}


@router.get("/tenants")
async def tenants_page(request: Request, session: DbSession, operator: CurrentOperator):
    return await _tenants_page(request, session, saved=opt(request.query_params.get("limits"), ID, "limits"))


@router.post("/tenants")
async def create_tenant(request: Request, session: DbSession, operator: CurrentOperator):
    """Register a tenant as ``POST /v1/tenants`` does (same service, idempotency and audit entry), then show
    it with its first API key, once. A refusal is the tenants page again with the form open and what was
    typed; the page's hidden key makes a second submission of the same form a replay, not a second tenant."""
    form = await posted(request, operator)
    typed = {name: form.text(name) for name in ("name", "tax_id", "jurisdiction", "vat_condition", "tier", "locale")}
    body: dict[str, Any] = {k: typed[k] for k in ("name", "tax_id", "jurisdiction", "tier", "locale") if typed[k]}
    if typed["jurisdiction"] == "AR" and typed["vat_condition"]:
        body["ar"] = {"vat_condition": typed["vat_condition"]}  # the select is ignored elsewhere
    try:
        key = form.text("key")
        if key is None or not ID.match(key):
            # N_: a constant detail, translated whole where it is shown (i18n.problems.localize).
            raise ValidationFailed(N_("the form expired; reload the page and try again"), code="form_expired")
        try:
            data = registry_schemas.TenantRegister.model_validate(body)
        except ValidationError as exc:
            raise validation_problem(exc.errors()) from None
        done = await registry.register(session, request.app.state.settings, data, FORM_KEY + key,
                                       actor=operator.principal.platform_actor)
    except StalelaError as exc:
        error = _form_error(request, exc)
        if exc.code == "idempotency_key_reused":  # this page's form made a tenant, then was changed and resent
            error.update(field=None, detail=_l10n(request).gettext(
                "This form already created a tenant. The form is ready again: send it to create another."))
        return await _tenants_page(request, session, exc.status, new_tenant=typed, new_error=error)
    return render(request, "ops_tenant_created.html", status=200 if done.replayed else 201,
                  tenant=await registry.describe(session, done.tenant), api_key=done.api_key,
                  api_key_id=done.api_key_id, replayed=done.replayed)


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
        return await _tenants_page(request, session, 422, limit_error={"tenant_id": tenant_id, "typed": typed,
                                                                       **_form_error(request, exc)})
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
