from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import ValidationError as PydanticValidationError

from stalela.auth.permissions import Perm
from stalela.auth.dependencies import AppSettings, DbSession, PublicRateLimit, Can, VerificationSession
from stalela.errors import StalelaError, ValidationFailed, validation_problem
from stalela.fiscal.invoices import service, verification
from stalela.fiscal.invoices.repository import SyncStateRepository
from stalela.fiscal.invoices.schemas import InvoiceBatch, InvoiceCreate, InvoiceFilters, check_client_key
from stalela.fiscal.invoices.sealing import YIELD_EVERY, SealRequest, prepare
from stalela.fiscal.ledger import service as ledger
from stalela.i18n import Localizer
from stalela.kit.fastjson import FastJSONResponse
from stalela.kit.problems import localized_problem, problem_language
from stalela.kit.openapi import media
from stalela.kit.pagination import PageParams, page_params
from stalela.kit.schemas import PathId, QueryId, Rfc3339DateTime
from stalela.observability import context as log_context
from stalela.kit.jsonbody import JSONRoute

router = APIRouter(route_class=JSONRoute, prefix="/v1", tags=["invoices"])
# The pages a QR code opens: what they cannot find is an HTML page in the visitor's language.
public_router = APIRouter(route_class=verification.PublicPageRoute, tags=["verification"],
                          dependencies=[PublicRateLimit])
# The invoice's place in the tenant's log: documented with the ledger, served here, where the invoice is.
ledger_router = APIRouter(route_class=JSONRoute, prefix="/v1", tags=["ledger"])
TreeSize = Annotated[int, Query(ge=1, le=2**62)]


@router.post("/invoices", status_code=201, responses={
    201: {"description": "The sealed invoice"},
    409: {"description": "reference_already_used, outlet_inactive"},
    422: {"description": "A fiscal rule or the schema rejected the invoice; no number was consumed"},
})
async def seal_invoice(
    body: InvoiceCreate,
    request: Request,
    principal: Can(Perm.INVOICES_WRITE, own_transaction=True),
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)] = None,
):
    """Validate, number, sign, chain and store an invoice; answer with the sealed invoice.

    Concurrent requests are sealed in groups sharing one commit (``STALELA_GROUP_COMMIT``); the
    answer is the same as if each had its own.
    """
    check_client_key(idempotency_key)
    result = await request.app.state.sealer.seal(prepare(SealRequest(principal, body, idempotency_key)))
    log_context.bind(outlet_id=body.outlet_id, invoice_id=result.body.get("id"))
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    # Sealed documents hold no floats (amounts are decimal strings): orjson's bytes are json's.
    return FastJSONResponse(result.body, status_code=result.status, headers=headers)


@router.post("/invoices/batch", responses={
    200: {"description": "One result per item, in order: the sealed invoice or the problem that rejected it"},
    422: {"description": "The batch itself is malformed (not an item): batch_too_large, ..."},
})
async def seal_batch(
    batch: InvoiceBatch,
    request: Request,
    principal: Can(Perm.INVOICES_WRITE, own_transaction=True),
    settings: AppSettings,
):
    """Seal up to ``STALELA_BATCH_MAX_INVOICES`` invoices in order, each with its own idempotency key.

    Rejected items consume no number and do not stop the others; the accepted ones are sealed in
    order in one transaction (more only if the database fails one).
    """
    if len(batch.items) > settings.batch_max_invoices:
        raise ValidationFailed(f"at most {settings.batch_max_invoices} invoices per batch",
                               code="batch_too_large", field="items")
    results: list[dict | None] = [None] * len(batch.items)
    l10n = problem_language(request)  # each item's problem in the reader's language, as a whole answer's
    requests, positions = [], []
    for i, item in enumerate(batch.items):
        if i % YIELD_EVERY == YIELD_EVERY - 1:
            await asyncio.sleep(0)  # other requests of this process take turns with a large batch's checks
        try:
            check_client_key(item.idempotency_key, f"items[{i}].idempotency_key")
            body = InvoiceCreate.model_validate(item.invoice)
            requests.append(prepare(SealRequest(principal, body, item.idempotency_key)))
        except PydanticValidationError as exc:
            results[i] = _item_problem(i, validation_problem(exc.errors(), prefix=f"items[{i}].invoice"), l10n)
            continue
        except ValidationFailed as exc:
            results[i] = _item_problem(i, exc, l10n)
            continue
        positions.append(i)
    outcomes = await request.app.state.sealer.seal_batch(principal.tenant_id, requests) if requests else []
    for i, outcome in zip(positions, outcomes):
        if isinstance(outcome, StalelaError):
            results[i] = _item_problem(i, outcome, l10n)
        else:
            results[i] = {"index": i, "status": outcome.status, "replayed": outcome.replayed, "invoice": outcome.body}
    sealed = sum(1 for r in results if r["status"] == 201)
    # A response, not a dict: FastAPI's jsonable_encoder walk of 1,000 sealed invoices costs more than
    # sealing them. Everything here is already plain JSON, without floats, so orjson encodes it.
    return FastJSONResponse({"object": "batch", "sealed": sealed, "rejected": len(results) - sealed, "data": results})


def _item_problem(index: int, error: StalelaError, l10n: Localizer) -> dict:
    return {"index": index, "status": error.status, "problem": localized_problem(error, l10n)}


def _filters(
    outlet_id: QueryId = None,
    type: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
    issued_at_gte: Rfc3339DateTime | None = None,
    issued_at_lt: Rfc3339DateTime | None = None,
    fiscal_number: QueryId = None,
) -> InvoiceFilters:
    return InvoiceFilters(outlet_id=outlet_id, type=type, issued_at_gte=issued_at_gte, issued_at_lt=issued_at_lt,
                          fiscal_number=fiscal_number)


@router.get("/invoices")
async def list_invoices(
    session: DbSession,
    settings: AppSettings,
    principal: Can(Perm.INVOICES_READ),
    paging: Annotated[PageParams, Depends(page_params)],
    filters: Annotated[InvoiceFilters, Depends(_filters)],
):
    """Sealed invoices, newest first, with filters."""
    rows, more = await service.list_invoices(
        session, principal, filters, limit=paging.limit, starting_after=paging.starting_after
    )
    return {"data": await _with_sync(session, settings, rows), "has_more": more}


@router.get("/invoices/{invoice_id}")
async def get_invoice(invoice_id: PathId, session: DbSession, settings: AppSettings,
                      principal: Can(Perm.INVOICES_READ)):
    """One sealed invoice, exactly as it was answered when sealed, with its current authority sync.

    The buyer is read back from its subject's key: after an erasure request it is ``null`` with
    ``buyer_status`` ``restricted`` (kept for the tax obligation, readable by auditors) or ``erased``."""
    return (await _with_sync(session, settings, [await service.get_invoice(session, principal, invoice_id)]))[0]


@router.get("/invoices/{invoice_id}/pdf", response_class=Response,
            responses={200: media("application/pdf", description="The sealed invoice as a PDF"),
                       422: {"description": "invalid_layout, invalid_locale"}})
async def invoice_pdf(invoice_id: PathId, session: DbSession, settings: AppSettings,
                      principal: Can(Perm.INVOICES_READ),
                      layout: Annotated[str | None, Query(max_length=20, description="a4 (default) or receipt: "
                                                          "an 80 mm thermal receipt")] = None,
                      lang: Annotated[str | None, Query(max_length=20, description="fr, es or en; default: the "
                                                        "tenant's language")] = None):
    """The sealed invoice as a printable fiscal document: seller, buyer, lines and totals per tax group,
    the jurisdiction's mandatory mentions (DGI code and counters, or CAE and ARCA's QR), the
    verification QR code and URL, and the tenant's logo if one is uploaded (docs/documents.md)."""
    name, content = await service.invoice_pdf(session, settings, principal, invoice_id, layout=layout, lang=lang)
    return Response(content, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


async def _with_sync(session, settings, rows) -> list[dict]:  # noqa: ANN001
    views = await SyncStateRepository(session).views([r.id for r in rows])
    shown = await service.render_many(session, settings, rows)
    return [{**body, "sync": service.sync_view(*views.get(r.id, (None, None)))} for r, body in zip(rows, shown)]


# Any text: the public page answers 404 for whatever is not a sealed invoice's id, malformed or not
# (a QR code from a forged receipt deserves "not found", not a schema error).
InvoiceId = Annotated[str, Path(max_length=1000)]


@public_router.get("/verify/{invoice_id}", response_class=HTMLResponse,
                   responses={200: media("text/html", json=True, description="The page, or JSON if asked for"),
                              404: media("text/html", description="Not known to Stalela (HTML unless JSON is "
                                         "asked for): an unknown, malformed or forged id, or a wrong tenant")})
async def verify_page(invoice_id: InvoiceId, request: Request, session: VerificationSession, settings: AppSettings,
                      lang: verification.PageLanguage = None):
    """The page a receipt's QR code opens: is this invoice authentic? No auth. The buyer's name only
    while its data is not restricted or erased; no other buyer data. In the visitor's language
    (``lang``, else ``Accept-Language``, else the issuer's).

    Answers JSON instead of HTML when the client sends ``Accept: application/json``.
    """
    verified = await verification.check(session, invoice_id, settings)
    if verification.wants_json(request):
        return verification.json_answer(verified.data)
    return verification.render_page(request, verified)


@public_router.get("/verify/{invoice_id}/qr.svg", response_class=Response,
                   responses={200: media("image/svg+xml", description="The QR code")})
async def verify_qr(invoice_id: InvoiceId, session: VerificationSession, settings: AppSettings):
    """The QR code to print on the receipt, as SVG."""
    invoice = await verification.find(session, invoice_id)  # 404 for unknown ids, like the page
    url = service.verification_url(settings, invoice.id, invoice.tenant_id)
    return Response(verification.qr_svg(url), media_type="image/svg+xml")


@ledger_router.get("/invoices/{invoice_id}/proof")
async def inclusion_proof(
    invoice_id: PathId, session: DbSession, principal: Can(Perm.INVOICES_READ), tree_size: TreeSize | None = None
):
    """RFC 9162 inclusion proof of the invoice's seal hash in the tenant's log (default: current size)."""
    inv = await service.get_invoice(session, principal, invoice_id)
    return await ledger.inclusion_proof(session, principal.tenant_id, inv.leaf_index, inv.seal_hash, tree_size)
