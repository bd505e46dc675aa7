from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from stalela.auth.permissions import Perm
from stalela.auth.dependencies import AppSettings, DbSession, OperatorPrincipal, Can
from stalela.kit.schemas import PathId
from stalela.kit.pagination import Page, PageParams, page_params
from stalela.accounts import schemas, service
from stalela.kit.jsonbody import JSONRoute

router = APIRouter(route_class=JSONRoute, prefix="/v1")
Id = PathId
Paging = Annotated[PageParams, Depends(page_params)]


# --- operator (control plane) --------------------------------------------------------------------

@router.post("/tenants", status_code=201, response_model=schemas.TenantCreated, tags=["tenants"])
async def create_tenant(body: schemas.TenantCreate, session: DbSession, principal: OperatorPrincipal,
                        settings: AppSettings):
    tenant, key = await service.create_tenant(session, settings, body, actor=principal.platform_actor)
    return schemas.TenantCreated(
        tenant=schemas.TenantOut.model_validate(tenant), api_key=key.secret, api_key_id=key.key.id
    )


@router.get("/tenants", response_model=Page[schemas.TenantOut], tags=["tenants"])
async def list_tenants(session: DbSession, _: OperatorPrincipal, paging: Paging):
    rows, more = await service.list_tenants(session, limit=paging.limit, starting_after=paging.starting_after)
    return {"data": rows, "has_more": more}


@router.get("/tenants/{tenant_id}", response_model=schemas.TenantOut, tags=["tenants"])
async def get_tenant(tenant_id: Id, session: DbSession, _: OperatorPrincipal):
    return await service.get_tenant(session, tenant_id)


@router.post("/tenants/{tenant_id}/suspend", response_model=schemas.TenantOut, tags=["tenants"],
             responses={409: {"description": "tenant_status_conflict"}})
async def suspend_tenant(tenant_id: Id, session: DbSession, principal: OperatorPrincipal):
    return await service.set_tenant_status(session, tenant_id, "suspended", actor=principal.platform_actor)


@router.post("/tenants/{tenant_id}/activate", response_model=schemas.TenantOut, tags=["tenants"],
             responses={409: {"description": "tenant_status_conflict"}})
async def activate_tenant(tenant_id: Id, session: DbSession, principal: OperatorPrincipal):
    return await service.set_tenant_status(session, tenant_id, "active", actor=principal.platform_actor)


# --- outlets -------------------------------------------------------------------------------------

@router.post("/outlets", status_code=201, response_model=schemas.OutletOut, tags=["outlets"],
             responses={409: {"description": "outlet_code_taken"}})
async def create_outlet(body: schemas.OutletCreate, session: DbSession, principal: Can(Perm.ADMIN)):
    return await service.create_outlet(session, principal, body)


@router.get("/outlets", response_model=Page[schemas.OutletOut], tags=["outlets"])
async def list_outlets(session: DbSession, principal: Can(Perm.OUTLETS_READ), paging: Paging):
    rows, more = await service.list_outlets(
        session, principal, limit=paging.limit, starting_after=paging.starting_after
    )
    return {"data": rows, "has_more": more}


@router.get("/outlets/{outlet_id}", response_model=schemas.OutletOut, tags=["outlets"])
async def get_outlet(outlet_id: Id, session: DbSession, principal: Can(Perm.OUTLETS_READ)):
    return await service.get_outlet(session, principal, outlet_id)


@router.patch("/outlets/{outlet_id}", response_model=schemas.OutletOut, tags=["outlets"])
async def update_outlet(outlet_id: Id, body: schemas.OutletUpdate, session: DbSession, principal: Can(Perm.ADMIN)):
    return await service.update_outlet(session, principal, outlet_id, body)


# --- API keys ------------------------------------------------------------------------------------

@router.post("/api-keys", status_code=201, response_model=schemas.ApiKeyCreated, tags=["api-keys"])
async def create_api_key(body: schemas.ApiKeyCreate, session: DbSession, principal: Can(Perm.ADMIN)):
    created = await service.create_api_key(session, principal, body)
    return schemas.ApiKeyCreated(**schemas.ApiKeyOut.model_validate(created.key).model_dump(), api_key=created.secret)


@router.get("/api-keys", response_model=Page[schemas.ApiKeyOut], tags=["api-keys"])
async def list_api_keys(session: DbSession, principal: Can(Perm.ADMIN), paging: Paging):
    rows, more = await service.list_api_keys(session, limit=paging.limit, starting_after=paging.starting_after)
    return {"data": rows, "has_more": more}


@router.get("/api-keys/{key_id}", response_model=schemas.ApiKeyOut, tags=["api-keys"])
async def get_api_key(key_id: Id, session: DbSession, principal: Can(Perm.ADMIN)):
    return await service.get_api_key(session, key_id)


@router.delete("/api-keys/{key_id}", response_model=schemas.ApiKeyOut, tags=["api-keys"])
async def revoke_api_key(key_id: Id, session: DbSession, principal: Can(Perm.ADMIN)):
    return await service.revoke_api_key(session, key_id, principal)
