"""Moving a tenant between tiers or servers (operator only): docs/operations.md, "Moving a tenant"."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from stalela.auth.dependencies import AppSettings, DbSession, OperatorPrincipal
from stalela.controlplane import move_service, schemas
from stalela.kit.jsonbody import JSONRoute
from stalela.kit.pagination import Page, PageParams, page_params
from stalela.kit.schemas import PathId

router = APIRouter(route_class=JSONRoute, prefix="/v1", tags=["tenants"])
Paging = Annotated[PageParams, Depends(page_params)]


@router.post("/tenants/{tenant_id}/move", status_code=202, response_model=schemas.MoveOut,
             responses={404: {"description": "tenant_not_found"},
                        409: {"description": "move_in_progress, move_noop, purge_required, move_unsupported, "
                                             "tenant_status_conflict"},
                        422: {"description": "unknown_server"}})
async def move_tenant(tenant_id: PathId, body: schemas.MoveRequest, session: DbSession, principal: OperatorPrincipal,
                      settings: AppSettings):
    return move_service.render(await move_service.request_move(session, settings, tenant_id, body,
                                                               actor=principal.platform_actor))


@router.get("/tenants/{tenant_id}/moves", response_model=Page[schemas.MoveOut],
            responses={404: {"description": "tenant_not_found"}})
async def list_moves(tenant_id: PathId, session: DbSession, _: OperatorPrincipal, paging: Paging):
    rows, more = await move_service.list_moves(session, tenant_id, limit=paging.limit,
                                               starting_after=paging.starting_after)
    return {"data": [move_service.render(m) for m in rows], "has_more": more}


@router.get("/tenants/{tenant_id}/moves/{move_id}", response_model=schemas.MoveOut,
            responses={404: {"description": "move_not_found"}})
async def get_move(tenant_id: PathId, move_id: PathId, session: DbSession, _: OperatorPrincipal):
    return move_service.render(await move_service.get_move(session, tenant_id, move_id))


@router.post("/tenants/{tenant_id}/moves/{move_id}/purge", status_code=202, response_model=schemas.MoveOut,
             responses={404: {"description": "move_not_found"},
                        409: {"description": "move_not_completed, source_in_use"}})
async def purge_move_source(tenant_id: PathId, move_id: PathId, session: DbSession, principal: OperatorPrincipal):
    return move_service.render(await move_service.request_purge(session, tenant_id, move_id,
                                                                actor=principal.platform_actor))
