from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from stalela.auth.dependencies import AppSettings, DbSession, TenantPrincipal
from stalela.fiscal.invoices import service as invoices
from stalela.fiscal.ledger import service
from stalela.fiscal.ledger.repository import CheckpointRepository
from stalela.kit.pagination import PageParams, page_params
from stalela.kit.schemas import PathId

router = APIRouter(prefix="/v1", tags=["ledger"])
Size = Annotated[int, Query(ge=1, le=2**62)]


@router.post("/ledger/checkpoints", status_code=201)
async def create_checkpoint(session: DbSession, principal: TenantPrincipal, settings: AppSettings):
    """Sign the current tree head of the tenant's log."""
    return service.render_checkpoint(
        await service.create_checkpoint(session, settings, principal.tenant_id, "on_demand"))


@router.get("/ledger/checkpoints/latest")
async def latest_checkpoint(session: DbSession, principal: TenantPrincipal):
    return service.render_checkpoint(await service.latest_checkpoint(session))


@router.get("/ledger/checkpoints")
async def list_checkpoints(
    session: DbSession,
    principal: TenantPrincipal,
    paging: Annotated[PageParams, Depends(page_params)],
    min_tree_size: Annotated[int | None, Query(ge=0)] = None,
    max_tree_size: Annotated[int | None, Query(ge=0)] = None,
):
    """Checkpoints, newest first."""
    rows, more = await CheckpointRepository(session).search(
        min_size=min_tree_size, max_size=max_tree_size, limit=paging.limit, starting_after=paging.starting_after)
    return {"data": [service.render_checkpoint(r) for r in rows], "has_more": more}


@router.get("/invoices/{invoice_id}/proof")
async def inclusion_proof(
    invoice_id: PathId, session: DbSession, principal: TenantPrincipal, tree_size: Size | None = None
):
    """RFC 9162 inclusion proof of the invoice's seal hash in the tenant's log (default: current size)."""
    inv = await invoices.get_invoice(session, principal, invoice_id)
    return await service.inclusion_proof(session, principal.tenant_id, inv.leaf_index, inv.seal_hash, tree_size)


@router.get("/ledger/consistency")
async def consistency_proof(first: Size, second: Size, session: DbSession, principal: TenantPrincipal):
    """RFC 9162 consistency proof between two tree sizes of the tenant's log."""
    return await service.consistency_proof(session, principal.tenant_id, first, second)
