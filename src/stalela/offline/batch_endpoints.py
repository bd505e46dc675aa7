"""Routes of returned batches, their receipts and fork proofs (docs/offline.md, "Returning invoices")."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from stalela.auth.dependencies import AppSettings, Can, DbSession
from stalela.auth.permissions import Perm
from stalela.kit.fastjson import FastJSONResponse
from stalela.kit.jsonbody import JSONRoute
from stalela.kit.pagination import PageParams, page_params
from stalela.kit.schemas import PathId, QueryId
from stalela.offline import batch_service as service
from stalela.offline.batch_schemas import BatchCreate

router = APIRouter(route_class=JSONRoute, prefix="/v1/offline", tags=["offline"])

_ID = "01m97a1cbg0dgpcfmftbay12xt"
_HASH = "7403d0774186c3660e635054f4017a3d799d2d495f217129df4a338186aeba49"
_RECEIPT = {"id": f"orc_{_ID}", "object": "offline_receipt", "block_id": f"blk_{_ID}", "credential": f"dcr_{_ID}",
            "counter": 2, "device_hash": _HASH, "outcome": "merged", "code": None, "invoice_id": f"inv_{_ID}",
            "event_id": None, "batch_id": f"obt_{_ID}", "created": "2026-12-07T10:00:00.000Z"}
_BATCH = {"id": f"obt_{_ID}", "object": "offline_batch", "credential": f"dcr_{_ID}", "block_id": f"blk_{_ID}",
          "device_id": f"dev_{_ID}", "received_at": "2026-12-07T10:00:00.000Z", "merged": 1, "refused": 1, "held": 0,
          "block": {"next": 4, "head": _HASH, "closed": False},
          "checkpoint": {"id": f"chk_{_ID}", "tree_size": 9, "root_hash": _HASH},
          "data": [{"index": 0, "counter": 2, "fiscal_number": "SHOP-00000002", "device_hash": _HASH,
                    "outcome": "merged", "code": None, "receipt_id": f"orc_{_ID}", "invoice_id": f"inv_{_ID}",
                    "event_id": None, "replayed": False, "late": False},
                   {"index": 1, "counter": 3, "fiscal_number": "SHOP-00000003", "device_hash": _HASH,
                    "outcome": "refused", "code": "offline_cap_exceeded", "detail": "the total 2000000.00 is above the "
                    "credential's max_invoice_total 1000000", "receipt_id": f"orc_{_ID}", "invoice_id": None,
                    "event_id": f"lev_{_ID}", "replayed": False, "late": False}]}
_PROOF = {"id": f"frk_{_ID}", "object": "fork_proof", "credential": f"dcr_{_ID}", "block_id": f"blk_{_ID}",
          "counter": 3, "created": "2026-12-07T10:00:00.000Z",
          "seal": {"payload": {"v": 1, "kind": "fork_proof", "counter": 3, "first": {"hash": _HASH},
                               "second": {"hash": _HASH}}, "hash": _HASH, "signature": "i-iIuwRx…",
                   "key_id": f"key_{_ID}", "algorithm": "ES256"}}


def _example(value: object) -> dict:
    return {"content": {"application/json": {"example": value}}}


@router.post("/batches", responses={
    200: {"description": "One result per invoice, in order: merged, refused or held", **_example(_BATCH)},
    403: {"description": "api_key_outlet_restricted: the credential is another outlet's"},
    404: {"description": "offline_credential_unknown"},
    409: {"description": "offline_number_reused (a fork), offline_number_returned (a number the device gave back): "
                         "the answer holds the fork proof, the credential is revoked"},
    422: {"description": "credential_*: the credential does not verify; or the batch is malformed"},
})
async def return_batch(body: BatchCreate, request: Request, settings: AppSettings,
                       principal: Can(Perm.INVOICES_WRITE, own_transaction=True)):
    """Verify a device's offline invoices and merge them into the ledger, in the device's order.

    The same batch again gets the same answer. A fork (another invoice the device signed at a used
    number) answers 409 with a fork proof and revokes the credential: that much is committed, although
    nothing of the batch merges."""
    answer = await service.receive_batch(request.app.state.db, settings, principal, body)
    if answer.error is not None:
        raise answer.error  # after the commit: the fork proof and the revocation stay
    return FastJSONResponse(answer.body, status_code=answer.status)


@router.get("/batches/{batch_id}", responses={200: _example(_BATCH), 404: {"description": "offline_batch_not_found"}})
async def get_batch(batch_id: PathId, session: DbSession, principal: Can(Perm.INVOICES_READ)):
    """A returned batch's stored answer (a fork's 409 problem document included)."""
    return FastJSONResponse((await service.get_batch(session, principal, batch_id)).body)


@router.get("/receipts", responses={200: _example({"data": [_RECEIPT], "has_more": False})})
async def list_receipts(session: DbSession, principal: Can(Perm.INVOICES_READ),
                        paging: Annotated[PageParams, Depends(page_params)], block_id: QueryId = None,
                        outcome: Annotated[Literal["merged", "refused"] | None, Query()] = None):
    """What each returned number became (merged or refused), newest first."""
    rows, more = await service.list_receipts(session, principal, block_id=block_id, outcome=outcome,
                                             limit=paging.limit, starting_after=paging.starting_after)
    return {"data": [service.render_receipt(r) for r in rows], "has_more": more}


@router.get("/fork-proofs/{proof_id}", responses={200: _example(_PROOF), 404: {"description": "fork_proof_not_found"}})
async def get_fork_proof(proof_id: PathId, session: DbSession, principal: Can(Perm.INVOICES_READ)):
    """A fork proof: two different invoices the device signed at one number, countersigned by the cloud."""
    return service.render_fork_proof(await service.get_fork_proof(session, principal, proof_id))
