"""Operator accounts (``/v1/operators``) and the platform audit log (``/v1/ops/audit``): the operator API,
for the static operator token (automation). People manage operators in the /ops console, where the
platform_admin role is required (``dashboard/ops_operator_endpoints.py``)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from stalela.audit import platform as platform_audit
from stalela.auth.dependencies import AppSettings, DbSession, OperatorPrincipal, client_ip
from stalela.controlplane import operator_schemas as schemas
from stalela.controlplane import operator_service as service
from stalela.kit.jsonbody import JSONRoute
from stalela.kit.pagination import PageParams, page_params
from stalela.kit.schemas import PathId

router = APIRouter(route_class=JSONRoute, prefix="/v1", tags=["operators"])
Paging = Annotated[PageParams, Depends(page_params)]


@router.post("/operators", status_code=201, response_model=schemas.OperatorOut,
             responses={409: {"description": "operator_email_taken"}})
async def create_operator(body: schemas.OperatorCreate, request: Request, session: DbSession,
                          principal: OperatorPrincipal, settings: AppSettings):
    op = await service.create_operator(session, settings, principal.platform_actor, email=body.email,
                                       name=body.name, role=body.role, password=body.password, ip=client_ip(request))
    return service.view(op)


@router.get("/operators", response_model=schemas.OperatorPage)
async def list_operators(session: DbSession, _: OperatorPrincipal, paging: Paging,
                         role: schemas.OperatorRole | None = None,
                         status: Annotated[str | None, Query(pattern="^(active|deactivated)$")] = None):
    rows, more = await service.list_operators(session, role=role, status=status, limit=paging.limit,
                                              starting_after=paging.starting_after)
    return {"data": [service.view(op) for op in rows], "has_more": more}


@router.get("/operators/{operator_id}", response_model=schemas.OperatorOut)
async def get_operator(operator_id: PathId, session: DbSession, _: OperatorPrincipal):
    return service.view(await service.get_operator(session, operator_id))


@router.patch("/operators/{operator_id}", response_model=schemas.OperatorOut,
              responses={409: {"description": "operator_self_change"}})
async def update_operator(operator_id: PathId, body: schemas.OperatorUpdate, request: Request, session: DbSession,
                          principal: OperatorPrincipal):
    op = await service.update_operator(session, principal.platform_actor, operator_id,
                                       body.model_dump(exclude_unset=True), ip=client_ip(request))
    return service.view(op)


@router.get("/ops/audit", response_model=schemas.PlatformAuditPage, tags=["operations"])
async def platform_audit_log(session: DbSession, _: OperatorPrincipal,
                             limit: Annotated[int, Query(ge=1, le=100)] = 20,
                             before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
                             action: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z_.]+$")] = None):
    """Every operator action, newest first (a hash chain: ``/v1/ops/audit/verify`` checks it)."""
    rows, more = await platform_audit.page(session, limit=limit, before=before, action=action)
    return {"data": rows, "has_more": more, "next_before": rows[-1]["seq"] if more and rows else None}


@router.get("/ops/audit/verify", response_model=schemas.PlatformAuditVerification, tags=["operations"])
async def verify_platform_audit_log(session: DbSession, _: OperatorPrincipal):
    checked, problem = await platform_audit.verify(session)
    return {"checked": checked, "valid": problem is None, "problem": problem}
