"""Invoice drafts from text, their approvals and their seal (docs/api.md, "Invoice drafts")."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from stalela.assistants import providers, service
from stalela.assistants.schemas import ApprovalCreate, DraftCreate, DraftPatch, SealDraft, SettingsPatch
from stalela.auth.dependencies import AppSettings, Can, DbSession, TenantSession, client_ip
from stalela.auth.permissions import Perm
from stalela.db.base import utcnow
from stalela.errors import ValidationFailed
from stalela.kit.jsonbody import JSONRoute
from stalela.kit.pagination import PageParams, page_params
from stalela.kit.problems import localized_problem, problem_language
from stalela.kit.schemas import PathId

router = APIRouter(route_class=JSONRoute, prefix="/v1", tags=["invoice drafts"])


# Drafting checks its caller in a transaction of its own, then asks the LLM (when asked for) before the request's
# transaction: waiting for the model, up to its timeout, holds no lock and no pooled connection.
Drafter = Can(Perm.INVOICES_DRAFT, own_transaction=True)


async def _model_reading(body: DraftCreate, settings: AppSettings, _: Drafter) -> providers.Reading | None:
    return await providers.read_request(settings, body.text, utcnow().date()) if body.provider == "llm" else None


@router.post("/invoice-drafts", status_code=201, responses={
    201: {"description": "The draft, confident enough and without questions"},
    422: {"description": "draft_low_confidence: the draft (stored: complete it with PATCH) and its questions; "
                         "draft_provider_unavailable (field provider): llm asked, none configured"},
})
async def create_draft(body: DraftCreate, request: Request, principal: Drafter,
                       reading: Annotated[providers.Reading | None, Depends(_model_reading)],
                       session: TenantSession, settings: AppSettings):
    """Draft an invoice from a Spanish or French request. Nothing is sealed: see ``/seal``."""
    draft, accepted = await service.create_draft(session, settings, principal, body, reading)
    if accepted:
        return draft
    problem = ValidationFailed("the draft is not sure enough to seal: answer its questions (PATCH the draft)",
                               code="draft_low_confidence", extra={"draft": draft, "questions": draft["questions"]})
    # Answered, not raised: the stored draft must be committed with the 422 so that PATCH can complete it.
    return JSONResponse(localized_problem(problem, problem_language(request)), status_code=422,
                        media_type="application/problem+json")


@router.get("/invoice-drafts")
async def list_drafts(session: DbSession, principal: Can(Perm.INVOICES_DRAFT),
                      paging: Annotated[PageParams, Depends(page_params)],
                      status: Annotated[Literal["draft", "sealed", "discarded"] | None, Query()] = None):
    """Drafts, newest first."""
    rows, more = await service.list_drafts(session, principal, status=status, limit=paging.limit,
                                           starting_after=paging.starting_after)
    return {"data": rows, "has_more": more}


@router.get("/invoice-drafts/{draft_id}", responses={404: {"description": "invoice_draft_not_found"}})
async def get_draft(draft_id: PathId, session: DbSession, principal: Can(Perm.INVOICES_DRAFT)):
    """One draft, with its totals as the jurisdiction's engine computes them now."""
    return await service.get_draft(session, principal, draft_id)


@router.patch("/invoice-drafts/{draft_id}", responses={
    404: {"description": "invoice_draft_not_found"},
    409: {"description": "invoice_draft_sealed, invoice_draft_discarded"},
    422: {"description": "the invoice breaks a rule, as POST /v1/invoices would answer"}})
async def patch_draft(draft_id: PathId, body: DraftPatch, session: DbSession, principal: Can(Perm.INVOICES_DRAFT)):
    """Replace the draft's invoice body: re-validated, re-totalled, a new content hash (old approvals lapse)."""
    return await service.patch_draft(session, principal, draft_id, body.invoice)


@router.delete("/invoice-drafts/{draft_id}", responses={
    404: {"description": "invoice_draft_not_found"}, 409: {"description": "invoice_draft_sealed"}})
async def discard_draft(draft_id: PathId, session: DbSession, principal: Can(Perm.INVOICES_DRAFT)):
    """Discard the draft (kept, status ``discarded``); a sealed one cannot be."""
    return await service.discard_draft(session, principal, draft_id)


@router.post("/invoice-drafts/{draft_id}/approvals", status_code=201, responses={
    403: {"description": "draft_self_approval"},
    404: {"description": "invoice_draft_not_found"},
    409: {"description": "invoice_draft_sealed, invoice_draft_discarded"}})
async def approve_draft(draft_id: PathId, request: Request, session: DbSession,
                        principal: Can(Perm.INVOICES_APPROVE), body: ApprovalCreate | None = None):
    """A person approves the draft as it is now: single use, bound to its content hash, 15 minutes by default."""
    expires_in = (body or ApprovalCreate()).expires_in
    return await service.approve(session, principal, draft_id, expires_in, client_ip(request))


@router.post("/invoice-drafts/{draft_id}/seal", status_code=201, responses={
    200: {"description": "Already sealed: the same invoice"},
    201: {"description": "The sealed invoice (as POST /v1/invoices answers)"},
    403: {"description": "draft_approval_required, draft_seal_disabled"},
    404: {"description": "invoice_draft_not_found, draft_approval_not_found"},
    409: {"description": "draft_changed, draft_approval_used, draft_approval_expired, invoice_draft_discarded"},
    422: {"description": "invoice_draft_incomplete, or a fiscal rule, as POST /v1/invoices"}})
async def seal_draft(draft_id: PathId, request: Request, response: Response, session: DbSession,
                     settings: AppSettings, principal: Can(Perm.INVOICES_DRAFT), body: SealDraft | None = None,
                     idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", min_length=1,
                                                                   max_length=255)] = None):
    """Seal the draft through the same pipeline as POST /v1/invoices, exactly once: a person holding
    invoices:write directly, an API key only with a person's approval and a policy other than ``disabled``."""
    invoice, created = await service.seal_draft(session, settings, principal, draft_id,
                                                (body or SealDraft()).approval_id, idempotency_key,
                                                client_ip(request))
    if not created:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return invoice


@router.get("/assistant-settings")
async def get_settings(session: DbSession, principal: Can(Perm.INVOICES_READ)):
    """The tenant's drafting policy: who may seal a draft, and the confidence a draft needs."""
    return await service.get_policy(session)


@router.patch("/assistant-settings")
async def patch_settings(body: SettingsPatch, session: DbSession, principal: Can(Perm.ADMIN)):
    """Change the drafting policy (administrators)."""
    return await service.update_policy(session, principal, body)
