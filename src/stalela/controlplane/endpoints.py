"""The tenant registry (operator only): the control plane's routes. Moves are in move_endpoints.py."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Response

from stalela.auth.dependencies import AppSettings, DbSession, OperatorPrincipal
from stalela.accounts import service as accounts
from stalela.controlplane import schemas, service
from stalela.kit.jsonbody import JSONRoute
from stalela.kit.pagination import Page, PageParams, page_params
from stalela.kit.schemas import PathId

router = APIRouter(route_class=JSONRoute, prefix="/v1", tags=["tenants"])
Paging = Annotated[PageParams, Depends(page_params)]


def _filters(
    status: Literal["provisioning", "active", "suspended", "deprovisioning", "deleted"] | None = Query(None),
    tier: Literal["shared", "dedicated"] | None = Query(None),
    jurisdiction: str | None = Query(None, pattern=r"^[A-Z]{2,8}$"),
) -> schemas.TenantListFilters:
    return schemas.TenantListFilters(status=status, tier=tier, jurisdiction=jurisdiction)


@router.post("/tenants", status_code=201, response_model=schemas.TenantRegistered,
             responses={200: {"model": schemas.TenantRegistered, "description": "a replay (same Idempotency-Key)"},
                        202: {"model": schemas.TenantRegistered, "description": "dedicated: provisioning started"},
                        409: {"description": "idempotency_key_reused: the key named another request; "
                                              "idempotency_key_in_use: a request with the key is in progress"},
                        422: {"description": "unknown_server: `target` is no configured server; "
                                              "field_not_applicable: `target` with the shared tier"}})
async def create_tenant(body: schemas.TenantRegister, session: DbSession, principal: OperatorPrincipal,
                        settings: AppSettings, response: Response,
                        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", min_length=1,
                                                                      max_length=255)] = None):
    done = await service.register(session, settings, body, idempotency_key, actor=principal.platform_actor)
    response.status_code = 200 if done.replayed else 202 if done.job.status == "running" else 201
    return schemas.TenantRegistered(tenant=await service.describe(session, done.tenant), api_key=done.api_key,
                                    api_key_id=done.api_key_id)


@router.get("/tenants", response_model=Page[schemas.RegistryTenantOut])
async def list_tenants(session: DbSession, _: OperatorPrincipal, paging: Paging,
                       filters: Annotated[schemas.TenantListFilters, Depends(_filters)]):
    rows, more = await service.search(session, filters, limit=paging.limit, starting_after=paging.starting_after)
    return {"data": [await service.describe(session, t) for t in rows], "has_more": more}


@router.get("/tenants/{tenant_id}", response_model=schemas.RegistryTenantOut, responses={404: {"description": "tenant_not_found"}})
async def get_tenant(tenant_id: PathId, session: DbSession, _: OperatorPrincipal):
    return await service.describe(session, await service.get_tenant(session, tenant_id))


@router.patch("/tenants/{tenant_id}", response_model=schemas.RegistryTenantOut,
              responses={404: {"description": "tenant_not_found"},
                         409: {"description": "tenant_status_conflict (a deleted tenant)"},
                         503: {"description": "a dedicated tenant's database is unreachable (its copy of the row)"}})
async def patch_tenant(tenant_id: PathId, body: schemas.TenantPatch, session: DbSession, principal: OperatorPrincipal):
    return await service.describe(session, await service.patch(session, tenant_id, body,
                                                               actor=principal.platform_actor))


@router.post("/tenants/{tenant_id}/suspend", response_model=schemas.RegistryTenantOut,
             responses={404: {"description": "tenant_not_found"}, 409: {"description": "tenant_status_conflict"}})
async def suspend_tenant(tenant_id: PathId, session: DbSession, principal: OperatorPrincipal):
    return await service.describe(session, await accounts.set_tenant_status(session, tenant_id, "suspended",
                                                                            actor=principal.platform_actor))


@router.post("/tenants/{tenant_id}/activate", response_model=schemas.RegistryTenantOut,
             responses={404: {"description": "tenant_not_found"}, 409: {"description": "tenant_status_conflict"}})
async def activate_tenant(tenant_id: PathId, session: DbSession, principal: OperatorPrincipal):
    return await service.describe(session, await accounts.set_tenant_status(session, tenant_id, "active",
                                                                            actor=principal.platform_actor))
