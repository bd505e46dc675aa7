from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from stalela.auth.permissions import Perm
from stalela.auth.dependencies import AppSettings, DbSession, Can
from stalela.fiscal.ledger import service
from stalela.fiscal.ledger.repository import CheckpointRepository
from stalela.kit.pagination import PageParams, page_params
from stalela.kit.schemas import NonNegativeInt64
from stalela.kit.jsonbody import JSONRoute

router = APIRouter(route_class=JSONRoute, prefix="/v1", tags=["ledger"])
Size = Annotated[int, Query(ge=1, le=2**62)]


@router.post("/ledger/checkpoints", status_code=201)
async def create_checkpoint(session: DbSession, principal: Can(Perm.REPORTS_WRITE), settings: AppSettings):
    """Sign the current tree head of the tenant's log."""
    return service.render_checkpoint(
        await service.create_checkpoint(session, settings, principal.tenant_id, "on_demand"))


@router.get("/ledger/checkpoints/latest", responses={
    404: {"description": "checkpoint_not_found: no checkpoint has been signed for this tenant yet"}})
async def latest_checkpoint(session: DbSession, principal: Can(Perm.INVOICES_READ)):
    return service.render_checkpoint(await service.latest_checkpoint(session))


@router.get("/ledger/checkpoints")
async def list_checkpoints(
    session: DbSession,
    principal: Can(Perm.INVOICES_READ),
    paging: Annotated[PageParams, Depends(page_params)],
    min_tree_size: Annotated[NonNegativeInt64 | None, Query()] = None,
    max_tree_size: Annotated[NonNegativeInt64 | None, Query()] = None,
):
    """Checkpoints, newest first."""
    rows, more = await CheckpointRepository(session).search(
        min_size=min_tree_size, max_size=max_tree_size, limit=paging.limit, starting_after=paging.starting_after)
    return {"data": [service.render_checkpoint(r) for r in rows], "has_more": more}


@router.get("/ledger/consistency")
async def consistency_proof(first: Size, second: Size, session: DbSession, principal: Can(Perm.INVOICES_READ)):
    """RFC 9162 consistency proof between two tree sizes of the tenant's log."""
    return await service.consistency_proof(session, principal.tenant_id, first, second)
