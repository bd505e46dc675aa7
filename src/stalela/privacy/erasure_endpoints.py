"""Erasure requests (GDPR Art. 17): filed by the tenant's owner for a buyer, by the operator for a
tenant's user; and the auditor's read of restricted data."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from stalela.auth.dependencies import AppSettings, Can, DbSession, OperatorPrincipal
from stalela.auth.permissions import Perm
from stalela.kit.jsonbody import JSONRoute
from stalela.kit.pagination import Page, PageParams, page_params
from stalela.kit.schemas import PathId
from stalela.privacy import erasure_schemas as schemas
from stalela.privacy import erasure_service as service

router = APIRouter(route_class=JSONRoute, prefix="/v1", tags=["privacy"])
Paging = Annotated[PageParams, Depends(page_params)]
Owner = Can(Perm.PRIVACY)
Auditor = Can(Perm.RESTRICTED_READ)


@router.post("/privacy/erasure-requests", status_code=202, response_model=schemas.ErasureAccepted,
             responses={422: {"description": "subject_required"}})
async def file_erasure(body: schemas.ErasureCreate, principal: Owner, session: DbSession, settings: AppSettings):
    """Erase a buyer's personal data: what fiscal law keeps is restricted until ``retain_until``, the
    rest erased now. Processed in the background; follow it with GET."""
    request = await service.file_request(session, settings, principal, body.subject.model_dump())
    return {"id": request.id, "status": request.status}


@router.get("/privacy/erasure-requests", response_model=Page[schemas.ErasureOut])
async def list_erasures(session: DbSession, _: Owner, paging: Paging):
    rows, more = await service.list_requests(session, limit=paging.limit, starting_after=paging.starting_after)
    return {"data": [service.render(r) for r in rows], "has_more": more}


@router.get("/privacy/erasure-requests/{request_id}", response_model=schemas.ErasureOut,
            responses={404: {"description": "erasure_request_not_found"}})
async def get_erasure(request_id: PathId, session: DbSession, _: Owner):
    return service.render(await service.get_request(session, request_id))


@router.get("/privacy/restricted/invoices/{invoice_id}", responses={404: {"description": "invoice_not_found"}})
async def read_restricted_invoice(invoice_id: PathId, session: DbSession, settings: AppSettings, principal: Auditor):
    """The invoice with its buyer even when restricted after erasure (auditors only; every read is audited)."""
    return await service.read_restricted_invoice(session, settings, principal, invoice_id)


@router.post("/tenants/{tenant_id}/erasure-requests", status_code=202, response_model=schemas.ErasureAccepted,
             tags=["tenants"], responses={404: {"description": "tenant_not_found"},
                                                 422: {"description": "user_not_found, subject_required"}})
async def file_user_erasure(tenant_id: PathId, body: schemas.UserErasureCreate, operator: OperatorPrincipal,
                            session: DbSession, settings: AppSettings):
    """Erase a tenant user's account data (operator): deactivated, e-mail and name replaced by a pseudonym,
    sessions ended."""
    request = await service.file_user_request(session, settings, operator, tenant_id, body.subject.email)
    return {"id": request.id, "status": request.status}
