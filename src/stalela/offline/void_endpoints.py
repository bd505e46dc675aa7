"""Blocks of offline devices: where each stands, and the device giving back its unused numbers."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from stalela.auth.dependencies import AppSettings, Can, DbSession
from stalela.auth.permissions import Perm
from stalela.fiscal.ledger.events import render_event
from stalela.kit.jsonbody import JSONRoute
from stalela.kit.pagination import PageParams, page_params
from stalela.kit.schemas import PathId, QueryId
from stalela.offline import void_service
from stalela.offline.void_schemas import BlockStatus, ReturnStatement

router = APIRouter(route_class=JSONRoute, prefix="/v1/offline/blocks", tags=["offline"])


@router.get("")
async def list_blocks(session: DbSession, principal: Can(Perm.INVOICES_READ),
                      paging: Annotated[PageParams, Depends(page_params)], device_id: QueryId = None,
                      status: Annotated[BlockStatus | None, Query()] = None):
    """Number blocks handed to offline devices, newest first (a restricted key: its outlet's)."""
    rows, more = await void_service.list_blocks(session, principal, device_id=device_id, status=status,
                                                limit=paging.limit, starting_after=paging.starting_after)
    return {"data": rows, "has_more": more}


@router.get("/{block_id}", responses={404: {"description": "offline_block_not_found"}})
async def get_block(block_id: PathId, session: DbSession, principal: Can(Perm.INVOICES_READ)):
    """One block: its range, where it stands (next number, voids, closed) and its sealed ledger events."""
    return await void_service.get_block(session, principal, block_id)


@router.post("/{block_id}/return", responses={
    200: {"description": "The sealed numbers_voided record (the same one for the same statement again)"},
    404: {"description": "offline_block_not_found"},
    409: {"description": "offline_void_misplaced (first/prev_hash are not where the block stands), offline_window_open, "
                         "offline_credential_unknown"},
    422: {"description": "offline_return_signature, offline_return_mismatch"},
})
async def return_block(block_id: PathId, body: ReturnStatement, session: DbSession, settings: AppSettings,
                       principal: Can(Perm.INVOICES_WRITE), response: Response):
    """The device gives back the unused tail of its block, in a statement signed by its credential's key;
    the numbers are voided (reason ``returned``)."""
    outcome = await void_service.return_tail(session, settings, principal, block_id, body.model_dump())
    if not outcome.created:
        response.headers["Idempotent-Replayed"] = "true"
    return {"object": "block_return", "block_id": outcome.block.id, "void": render_event(outcome.event),
            "block": void_service.render_block(outcome.block)}
