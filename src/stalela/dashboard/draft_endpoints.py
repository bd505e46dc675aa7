"""The merchant console's "Draft from text" (docs/assistants.md): a draft from a sentence, shown with its
confidence and questions, "Approve & seal", and "Approve for the assistant". A signed-in person seals with
their own permission, or makes the single-use approval an assistant's key seals with (``seal_draft``): the
same use cases as the API (``assistants.service``), so the seal is the pipeline's and the audit log's."""
from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import ValidationError as PydanticValidationError

from stalela.assistants import service as drafts
from stalela.assistants.schemas import ApprovalCreate, DraftCreate
from stalela.auth.dependencies import DbSession, client_ip
from stalela.auth.permissions import Perm
from stalela.dashboard.web import ID, CurrentViewer, DashboardRoute, need, opt, posted, redirect, render
from stalela.errors import ValidationFailed, validation_problem

router = APIRouter(prefix="/app", route_class=DashboardRoute, include_in_schema=False)


@router.post("/invoices/drafts")
async def create_draft(request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.INVOICES_DRAFT)
    form = await posted(request, viewer)
    text, locale = form.text("text"), form.text("locale")
    if text is None or len(text) > 2000 or locale not in (None, "es", "fr"):
        raise ValidationFailed("text: 1 to 2,000 characters", code="validation_failed", field="text")
    try:
        req = DraftCreate(text=text, locale=locale)
    except PydanticValidationError as exc:  # a NUL character, say: the form's error, never a 500
        raise validation_problem(exc.errors(), prefix="") from None
    draft, accepted = await drafts.create_draft(session, request.app.state.settings, viewer.principal, req)
    return render(request, "draft.html", status=201 if accepted else 422, draft=draft, accepted=accepted,
                  own=True)  # the viewer's own draft: no approval for it


async def _page(request: Request, session: DbSession, viewer: CurrentViewer, draft_id: str, status: int = 200,
                approval: dict | None = None):
    draft = await drafts.get_draft(session, viewer.principal, draft_id)
    threshold = (await drafts.policy(session)).confidence_threshold
    own = await drafts.drafted_by(session, viewer.principal, draft_id) == viewer.principal.actor
    return render(request, "draft.html", status=status, draft=draft, accepted=drafts.is_accepted(draft, threshold),
                  own=own, approval=approval)


@router.get("/invoices/drafts/{draft_id}")
async def draft_page(draft_id: str, request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.INVOICES_READ)
    return await _page(request, session, viewer, opt(draft_id, ID, "draft_id"))


@router.post("/invoices/drafts/{draft_id}/approvals")
async def approve_for_assistant(draft_id: str, request: Request, session: DbSession, viewer: CurrentViewer):
    """A single-use approval (the REST route's and ``stalela drafts approve``'s), shown for the person to give
    to the assistant. Whoever may seal here and approve over the API (owner, admin): not the draft's author."""
    need(viewer, Perm.INVOICES_WRITE)
    need(viewer, Perm.INVOICES_APPROVE)
    await posted(request, viewer)
    draft_id = opt(draft_id, ID, "draft_id")
    approval = await drafts.approve(session, viewer.principal, draft_id, ApprovalCreate().expires_in,
                                    client_ip(request))
    return await _page(request, session, viewer, draft_id, status=201, approval=approval)


@router.post("/invoices/drafts/{draft_id}/seal")
async def seal_draft(draft_id: str, request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.INVOICES_WRITE)
    await posted(request, viewer)
    invoice, _ = await drafts.seal_draft(session, request.app.state.settings, viewer.principal,
                                         opt(draft_id, ID, "draft_id"), None, None, client_ip(request))
    return redirect(f"/app/invoices/{invoice['id']}")
