"""Retention over HTTP: the tenant's policies per category, legal holds, the preview of the next run, and
``DELETE /v1/invoices/{id}``, which explains why a sealed invoice is never deleted."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from stalela.auth.dependencies import AppSettings, Can, DbSession
from stalela.auth.permissions import Perm
from stalela.kit.jsonbody import JSONRoute
from stalela.kit.pagination import Page, PageParams, page_params
from stalela.kit.schemas import PathId
from stalela.privacy import retention_schemas as schemas
from stalela.privacy import retention_service as service

router = APIRouter(route_class=JSONRoute, prefix="/v1/privacy/retention", tags=["privacy"])
invoice_router = APIRouter(route_class=JSONRoute, prefix="/v1", tags=["invoices"])
Admin = Can(Perm.ADMIN)  # owners and admins (and the tenant's admin-scoped keys)
Paging = Annotated[PageParams, Depends(page_params)]

_REFUSED = {409: {"description": "retention_required: inside its retention period (the body has `retain_until`, "
                                 "or `legal_hold: true`); ledger_append_only: after it. A sealed invoice is never "
                                 "deleted: it is part of the verifiable ledger, and its personal data is shredded "
                                 "at the end of its retention instead"}}
_BELOW_FLOOR = {422: {"description": "retention_below_statutory_minimum (field `years`, body `floor`): a fiscal "
                                     "policy shorter than the law's; or the schema's errors"}}


@router.get("/policies", response_model=schemas.PoliciesOut)
async def get_policies(session: DbSession, principal: Admin, settings: AppSettings):
    """Each category's retention in effect: the tenant's policy or the default, the statutory floor (fiscal) with
    its legal citation, and the purging rules with their periods."""
    return await service.get_policies(session, settings, principal)


@router.put("/policies/{category}", response_model=schemas.PolicyOut, responses=_BELOW_FLOOR)
async def put_policy(category: Annotated[schemas.Category, Path()], body: schemas.PolicyIn, session: DbSession,
                     principal: Admin, settings: AppSettings):
    """Replace the category's policy (omitted figures take their defaults). Fiscal documents may be kept longer
    than the law says, never shorter."""
    return await service.put_policy(session, settings, principal, category, body.years, body.days, body.grace_days)


@router.get("/holds", response_model=Page[schemas.HoldOut])
async def list_holds(session: DbSession, _: Admin, paging: Paging, include_released: bool = Query(False)):
    rows, more = await service.list_holds(session, include_released, limit=paging.limit,
                                          starting_after=paging.starting_after)
    return {"data": [service.hold_view(h) for h in rows], "has_more": more}


@router.post("/holds", status_code=201, response_model=schemas.HoldOut)
async def create_hold(body: schemas.HoldCreate, session: DbSession, principal: Admin):
    """Suspend purging, and the shredding of fiscal records' personal data, for what the scope covers (an
    outlet's hold also covers the tenant's data that names no outlet) until the hold is released."""
    hold = await service.create_hold(session, principal, body.reason, body.scope.outlet_id, body.scope.from_,
                                     body.scope.to)
    return service.hold_view(hold)


@router.delete("/holds/{hold_id}", response_model=schemas.HoldOut)
async def release_hold(hold_id: PathId, session: DbSession, principal: Admin):
    """Release the hold (it stays listed with ``include_released``). What it held gets a new grace period."""
    return service.hold_view(await service.release_hold(session, principal, hold_id))


@router.get("/preview", response_model=schemas.PreviewOut)
async def preview(session: DbSession, principal: Admin, settings: AppSettings):
    """Exactly what the next run would mark, purge and unmark now: counts per purger (table and category) and the
    first keys, computed by the statements the run executes."""
    return await service.preview(session, settings, principal.tenant_id)


@invoice_router.delete("/invoices/{invoice_id}", status_code=204, responses=_REFUSED)
async def delete_invoice(invoice_id: PathId, session: DbSession, principal: Can(Perm.INVOICES_WRITE)):
    """Always refused with 409, saying why (see the 409 answer)."""
    await service.delete_invoice(session, principal, invoice_id)
