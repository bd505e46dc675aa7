from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from stalela.auth.permissions import Perm
from stalela.auth.dependencies import DbSession, Can
from stalela.kit.schemas import PathId
from stalela.kit.pagination import Page, PageParams, page_params
from stalela.accounts import schemas, service
from stalela.kit.jsonbody import JSONRoute

router = APIRouter(route_class=JSONRoute, prefix="/v1")
Id = PathId
Paging = Annotated[PageParams, Depends(page_params)]


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
    view = await service.api_key_view(session, created.key)
    return schemas.ApiKeyCreated(**view.model_dump(), api_key=created.secret)


@router.get("/api-keys", response_model=Page[schemas.ApiKeyOut], tags=["api-keys"])
async def list_api_keys(session: DbSession, principal: Can(Perm.ADMIN), paging: Paging):
    rows, more = await service.list_api_keys(session, limit=paging.limit, starting_after=paging.starting_after)
    return {"data": await service.api_key_views(session, rows), "has_more": more}


@router.get("/api-keys/{key_id}", response_model=schemas.ApiKeyOut, tags=["api-keys"])
async def get_api_key(key_id: Id, session: DbSession, principal: Can(Perm.ADMIN)):
    return await service.api_key_view(session, await service.get_api_key(session, key_id))


@router.delete("/api-keys/{key_id}", response_model=schemas.ApiKeyOut, tags=["api-keys"])
async def revoke_api_key(key_id: Id, session: DbSession, principal: Can(Perm.ADMIN)):
    return await service.api_key_view(session, await service.revoke_api_key(session, key_id, principal))
