"""The operations console's operators page (platform_admin manages them; support sees them), each
operator's own account (their console's language, which support may change too) and the platform audit
log with its verification."""
from __future__ import annotations

from fastapi import APIRouter, Request

from stalela.audit import platform as platform_audit
from stalela.auth.dependencies import DbSession, client_ip
from stalela.controlplane import operator_service
from stalela.dashboard.web import ID, CurrentOperator, DashboardRoute, opt, posted, redirect, render
from stalela.errors import NotFound

router = APIRouter(prefix="/ops", route_class=DashboardRoute, include_in_schema=False)
PAGE = 50


@router.get("/operators")
async def operators_page(request: Request, session: DbSession, operator: CurrentOperator):
    after = opt(request.query_params.get("after"), ID, "after")
    rows, more = await operator_service.list_operators(session, limit=PAGE, starting_after=after)
    return render(request, "ops_operators.html", rows=rows, more=more, roles=operator_service.ROLES,
                  done=bool(request.query_params.get("done")))


@router.post("/operators")
async def create_operator(request: Request, session: DbSession, operator: CurrentOperator):
    form = await posted(request, operator)
    await operator_service.create_operator(
        session, request.app.state.settings, operator.principal.platform_actor, email=form.get("email", "").strip(),
        name=form.text("name") or "", role=form.get("role", ""), password=form.get("password") or None,
        ip=client_ip(request))
    return redirect("/ops/operators?done=1")


@router.post("/operators/{operator_id}")
async def update_operator(operator_id: str, request: Request, session: DbSession, operator: CurrentOperator):
    form = await posted(request, operator)
    changes = {"role": form.text("role"), "status": form.text("status")}
    await operator_service.update_operator(session, operator.principal.platform_actor,
                                           opt(operator_id, ID, "operator_id"), changes, ip=client_ip(request))
    return redirect("/ops/operators?done=1")


@router.get("/account")
async def account_page(request: Request, session: DbSession, operator: CurrentOperator):
    """The signed-in operator's account. The static token is nobody's account: its sessions follow the
    browser's language."""
    if operator.principal.user_id is None:
        raise NotFound("the operator token has no account; sign in as an operator to choose a language",
                       code="operator_not_found")
    me = await operator_service.get_operator(session, operator.principal.user_id)
    return render(request, "ops_account.html", me=me, done=bool(request.query_params.get("done")))


@router.post("/account")
async def update_account(request: Request, session: DbSession, operator: CurrentOperator):
    """Choose one's own language (empty: the browser's). Always one's own: the target is the session's."""
    form = await posted(request, operator)
    if operator.principal.user_id is None:
        raise NotFound("the operator token has no account", code="operator_not_found")
    await operator_service.update_operator(session, operator.principal.platform_actor, operator.principal.user_id,
                                           {"locale": form.text("locale")}, ip=client_ip(request))
    return redirect("/ops/account?done=1")


@router.get("/audit")
async def audit_page(request: Request, session: DbSession, operator: CurrentOperator):
    before_text = request.query_params.get("before", "")
    before = int(before_text) if before_text.isdigit() and len(before_text) < 19 else None
    rows, more = await platform_audit.page(session, limit=PAGE, before=before)
    checked, problem = await platform_audit.verify(session)
    return render(request, "ops_audit.html", rows=rows, more=more, checked=checked, problem=problem)
