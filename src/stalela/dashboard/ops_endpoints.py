"""The operations console (/ops): pipeline, authority sync, tenants and webhook health, for the
platform operator only (``STALELA_OPERATOR_TOKEN``). Sessions read across tenants (platform binding)."""
from __future__ import annotations

import re

from fastapi import APIRouter, Request

from stalela.auth.dependencies import DbSession, PublicRateLimit
from stalela.dashboard import pipeline, service
from stalela.dashboard.charts import sparkline
from stalela.dashboard.repository import DashboardRepository
from stalela.dashboard.web import (
    ID,
    OPS_COOKIE,
    CurrentOperator,
    DashboardRoute,
    check_origin,
    operator_login,
    opt,
    posted,
    queue_cookie,
    read_form,
    redirect,
    render,
)
from stalela.errors import ValidationFailed
from stalela.health.fleet import health_of
from stalela.migrations import head_revisions
from stalela.outbox import service as outbox
from stalela.accounts import service as tenancy
from stalela.controlplane import service as registry

router = APIRouter(prefix="/ops", route_class=DashboardRoute, include_in_schema=False)
TOPIC = re.compile(r"^[a-z0-9_.]{1,64}$")
BURST = re.compile(r"^[0-9]{1,9}$")  # parsed here; its bounds are the service's
SURVEY_PER_VIEW = 25  # dedicated databases checked per page view (the rest show their last check)


@router.get("/login", dependencies=[PublicRateLimit])
async def login_page(request: Request):
    enabled = request.app.state.settings.operator_token is not None
    return render(request, "ops_login.html", enabled=enabled)


@router.post("/login", dependencies=[PublicRateLimit])
async def login(request: Request):
    form = await read_form(request)
    # No session yet: the Origin check is this form's CSRF defence (and the token is the secret).
    check_origin(request)
    if not operator_login(request, form.get("token", "")):
        enabled = request.app.state.settings.operator_token is not None
        return render(request, "ops_login.html", status=401, enabled=enabled, error="Invalid operator token.")
    return redirect("/ops")


@router.post("/logout")
async def logout(request: Request, operator: CurrentOperator):
    await posted(request, operator)
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
    count = await outbox.replay(session, ids or None, None if ids else topic)
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
    await tenancy.set_tenant_status(session, opt(tenant_id, ID, "tenant_id"), status)
    return redirect("/ops/tenants")


@router.get("/databases")
async def databases_page(request: Request, operator: CurrentOperator):
    """Every database of the fleet: the control plane and each dedicated one, its revision against head, this
    process's pool and the last check."""
    rows = await health_of(request.app.state.db).survey(SURVEY_PER_VIEW)
    return render(request, "ops_databases.html", rows=rows, head=",".join(head_revisions()),
                  held=request.app.state.db.fleet.connections())
