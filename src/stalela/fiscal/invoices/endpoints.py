from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import AwareDatetime

from stalela.authority.repository import AuthorityRepository
from stalela.authority.service import sync_view
from stalela.auth.permissions import Perm
from stalela.auth.dependencies import AppSettings, DbSession, PublicSession, Can
from stalela.fiscal.invoices import service, verification
from stalela.fiscal.invoices.schemas import InvoiceCreate, InvoiceFilters
from stalela.kit.pagination import PageParams, page_params
from stalela.kit.schemas import PathId, QueryId

router = APIRouter(prefix="/v1", tags=["invoices"])
public_router = APIRouter(tags=["verification"])


@router.post("/invoices", status_code=201, responses={
    201: {"description": "The sealed invoice"},
    409: {"description": "idempotency_key_in_use, reference_already_used, outlet_inactive"},
    422: {"description": "A fiscal rule or the schema rejected the invoice; no number was consumed"},
})
async def seal_invoice(
    body: InvoiceCreate,
    session: DbSession,
    principal: Can(Perm.INVOICES_WRITE),
    settings: AppSettings,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)] = None,
):
    """Validate, number, sign, chain and store an invoice; answer with the sealed invoice."""
    result = await service.seal_invoice(session, settings, principal, body, idempotency_key)
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    return JSONResponse(result.body, status_code=result.status, headers=headers)


def _filters(
    outlet_id: QueryId = None,
    type: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
    issued_at_gte: AwareDatetime | None = None,
    issued_at_lt: AwareDatetime | None = None,
    fiscal_number: QueryId = None,
) -> InvoiceFilters:
    return InvoiceFilters(outlet_id=outlet_id, type=type, issued_at_gte=issued_at_gte, issued_at_lt=issued_at_lt,
                          fiscal_number=fiscal_number)


@router.get("/invoices")
async def list_invoices(
    session: DbSession,
    principal: Can(Perm.INVOICES_READ),
    paging: Annotated[PageParams, Depends(page_params)],
    filters: Annotated[InvoiceFilters, Depends(_filters)],
):
    """Sealed invoices, newest first, with filters."""
    rows, more = await service.list_invoices(
        session, principal, filters, limit=paging.limit, starting_after=paging.starting_after
    )
    return {"data": await _with_sync(session, rows), "has_more": more}


@router.get("/invoices/{invoice_id}")
async def get_invoice(invoice_id: PathId, session: DbSession, principal: Can(Perm.INVOICES_READ)):
    """One sealed invoice, exactly as it was answered when sealed, with its current authority sync."""
    return (await _with_sync(session, [await service.get_invoice(session, principal, invoice_id)]))[0]


async def _with_sync(session, rows) -> list[dict]:  # noqa: ANN001
    views = await AuthorityRepository(session).sync_views([r.id for r in rows])
    return [{**service.render(r), "sync": sync_view(*views.get(r.id, (None, None)))} for r in rows]


InvoiceId = PathId


@public_router.get("/verify/{invoice_id}", response_class=HTMLResponse)
async def verify_page(invoice_id: InvoiceId, request: Request, session: PublicSession):
    """The page a receipt's QR code opens: is this invoice authentic? No auth, never any buyer data.

    Answers JSON instead of HTML when the client sends ``Accept: application/json``.
    """
    result = await verification.verify(session, invoice_id)
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(result)
    return HTMLResponse(verification.render_page(result))


@public_router.get("/verify/{invoice_id}/qr.svg")
async def verify_qr(invoice_id: InvoiceId, session: PublicSession, settings: AppSettings):
    """The QR code to print on the receipt, as SVG."""
    await verification.verify(session, invoice_id)  # 404 for unknown ids, like the page
    return Response(verification.qr_svg(service.verification_url(settings, invoice_id)), media_type="image/svg+xml")
