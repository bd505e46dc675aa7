from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse
from pydantic import Field

from stalela.auth.permissions import Perm
from stalela.auth.dependencies import AppSettings, DbSession, Can
from stalela.fiscal.invoices import service as invoices
from stalela.fiscal.ledger import jobs, service
from stalela.fiscal.ledger.repository import CheckpointRepository
from stalela.kit.openapi import media
from stalela.kit.pagination import PageParams, page_params
from stalela.kit.schemas import CalendarDate, NonNegativeInt64, PathId, StrictModel

router = APIRouter(prefix="/v1", tags=["ledger"])
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


@router.get("/invoices/{invoice_id}/proof")
async def inclusion_proof(
    invoice_id: PathId, session: DbSession, principal: Can(Perm.INVOICES_READ), tree_size: Size | None = None
):
    """RFC 9162 inclusion proof of the invoice's seal hash in the tenant's log (default: current size)."""
    inv = await invoices.get_invoice(session, principal, invoice_id)
    return await service.inclusion_proof(session, principal.tenant_id, inv.leaf_index, inv.seal_hash, tree_size)


@router.get("/ledger/consistency")
async def consistency_proof(first: Size, second: Size, session: DbSession, principal: Can(Perm.INVOICES_READ)):
    """RFC 9162 consistency proof between two tree sizes of the tenant's log."""
    return await service.consistency_proof(session, principal.tenant_id, first, second)


class ExportRequest(StrictModel):
    from_: CalendarDate | None = Field(None, alias="from", description="First day (UTC), inclusive")
    to: CalendarDate | None = Field(None, description="Last day (UTC), exclusive")


@router.post("/exports/audit", status_code=202, tags=["exports"])
async def request_audit_export(body: ExportRequest, session: DbSession, principal: Can(Perm.EXPORTS)):
    """Start building a signed audit export (.tar.gz); poll the job, then download it."""
    return jobs.render_job(await jobs.request_export(session, principal.tenant_id, body.from_, body.to,
                                                     principal.actor))


@router.get("/exports/{export_id}", tags=["exports"])
async def get_export(export_id: PathId, session: DbSession, principal: Can(Perm.EXPORTS)):
    return jobs.render_job(await jobs.get_export(session, export_id))


@router.get("/exports/{export_id}/download", tags=["exports"], response_class=FileResponse,
            responses={200: media("application/gzip", description="The signed audit export (.tar.gz)"),
                       409: {"description": "export_not_ready"}})
async def download_export(export_id: PathId, session: DbSession, principal: Can(Perm.EXPORTS), settings: AppSettings):
    """The export file once ready (409 export_not_ready before)."""
    job = await jobs.get_export(session, export_id)
    path = jobs.ready_file(settings, job)
    headers = {"X-Content-SHA256": job.sha256} if job.sha256 else {}
    return FileResponse(path, media_type="application/gzip", filename=f"stalela-audit-{job.id}.tar.gz",
                        headers=headers)
