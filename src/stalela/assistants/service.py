"""Drafting and approving invoices from text (issue 19, items 3, 4 and 9).

A draft is a proposal, never a fiscal record: the parser proposes the body, the jurisdiction's engine
computes the totals, and nothing is sealed until a human decides. A seal goes through the invoices
service's ``seal_invoice`` (``sealing.seal_many``, the path of POST /v1/invoices), so numbering, ledger,
outbox and webhooks are the same. The draft's row is locked first: one draft, one invoice.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.assistants import providers
from stalela.assistants.models import AssistantSettings, DraftApproval, InvoiceDraft
from stalela.assistants.parser import ACCEPT_THRESHOLD, KnownBuyer, TenantContext, parse_request
from stalela.assistants.repository import ApprovalRepository, ContextRepository, DraftRepository, SettingsRepository
from stalela.assistants.schemas import DraftCreate, SettingsPatch
from stalela.audit import service as audit
from stalela.auth.permissions import Perm, permissions
from stalela.auth.principal import Principal
from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.errors import Conflict, Forbidden, NotFound, StalelaError, ValidationFailed, validation_problem
from stalela.fiscal.invoices import service as invoices
from stalela.fiscal.invoices.schemas import RESERVED_KEY_PREFIX, InvoiceCreate
from stalela.fiscal.jurisdictions import get_jurisdiction
from stalela.kit import canonical
from stalela.kit.clock import rfc3339
from stalela.kit.ids import new_id
from stalela.observability import metrics
from stalela.tenancy.repository import TenantRepository


def content_hash(invoice: dict[str, Any]) -> str:
    """What an approval is bound to: SHA-256 of the RFC 8785 canonical invoice body."""
    return hashlib.sha256(canonical.dumps(invoice)).hexdigest()


@dataclass
class Policy:
    seal_policy: str = "disabled"
    confidence_threshold: Decimal = ACCEPT_THRESHOLD


async def policy(session: AsyncSession) -> Policy:
    row = await SettingsRepository(session).of_tenant()
    return Policy(row.seal_policy, row.confidence_threshold) if row else Policy()


def render_policy(p: Policy) -> dict[str, Any]:
    return {"object": "assistant_settings", "seal_policy": p.seal_policy,
            "confidence_threshold": str(p.confidence_threshold.normalize())}


async def update_policy(session: AsyncSession, principal: Principal, patch: SettingsPatch) -> dict[str, Any]:
    repo = SettingsRepository(session)
    row = await repo.of_tenant(lock=True)
    if row is None:
        await repo.ensure(AssistantSettings(tenant_id=principal.tenant_id, seal_policy="disabled",
                                            confidence_threshold=ACCEPT_THRESHOLD, updated_by=principal.actor,
                                            updated_at=utcnow()))
        row = await repo.of_tenant(lock=True)
    given = patch.model_dump(exclude_unset=True, exclude_none=True)
    for name, value in given.items():
        setattr(row, name, value)
    row.updated_by, row.updated_at = principal.actor, utcnow()
    await session.flush()
    await audit.record(session, principal.tenant_id, principal.actor, "assistant_settings.updated",
                       principal.tenant_id, {k: str(v) for k, v in given.items()})
    return render_policy(Policy(row.seal_policy, row.confidence_threshold))


def render(d: InvoiceDraft, totals: dict[str, Any] | None = None, latency_ms: int | None = None) -> dict[str, Any]:
    out = {"id": d.id, "object": "invoice_draft", "status": d.status, "invoice": json.loads(d.draft),
           "totals": totals, "confidence": str(d.confidence), "field_confidences": json.loads(d.field_confidences),
           "reasons": json.loads(d.reasons), "questions": json.loads(d.questions), "provider": d.provider,
           "parser_version": d.parser_version, "locale": d.locale, "content_hash": d.content_hash,
           "invoice_id": d.invoice_id, "created_at": rfc3339(d.created_at), "updated_at": rfc3339(d.updated_at)}
    if latency_ms is not None:
        out["latency_ms"] = latency_ms
    return out


async def _tenant_context(session: AsyncSession, settings: Settings, principal: Principal,
                          tenant: Any) -> tuple[TenantContext, list[str]]:
    questions: list[str] = []
    outlets = [o for o in await ContextRepository(session).active_outlets() if principal.can_use_outlet(o.id)]
    outlet_id = principal.outlet_id or (outlets[0].id if outlets else "")
    if not outlet_id:
        questions.append("outlet_id: the tenant has no active outlet; create one or name it")
    recent = await ContextRepository(session).recent_invoices(_outlets_of(principal))
    buyers: dict[tuple[str, str | None], KnownBuyer] = {}
    for inv in await invoices.render_many(session, settings, recent) if recent else []:
        b = inv.get("buyer") or {}
        name, tax_id = b.get("name"), b.get("tax_id") or b.get("doc_number")  # DRC NIF or Argentine document
        if name and (name, tax_id) not in buyers:
            buyers[(name, tax_id)] = KnownBuyer(name=name, tax_id=tax_id, vat_condition=b.get("vat_condition"))
    context = TenantContext(jurisdiction=tenant.jurisdiction, today=utcnow().date(), buyers=tuple(buyers.values()),
                            outlet_id=outlet_id, ar_issuer=tenant.vat_condition or "responsable_inscripto")
    return context, questions


def _outlets_of(principal: Principal) -> frozenset[str] | None:
    """The outlets an outlet-restricted caller may use; None: every outlet."""
    if principal.outlet_id is not None:
        return frozenset({principal.outlet_id})
    return principal.outlet_ids


def _outlet_of(invoice: dict[str, Any]) -> str | None:
    outlet = invoice.get("outlet_id")
    return outlet[:40] if isinstance(outlet, str) and outlet else None


def totals_of(invoice: dict[str, Any], tenant: Any,
              original: Any = None) -> tuple[dict[str, Any] | None, StalelaError | None]:
    """The jurisdiction engine's totals (never the parser's), or the error that stops the body sealing.
    ``original``: a credit note's original invoice (the engine totals a credit note with it)."""
    try:
        body = InvoiceCreate.model_validate(invoice)
        rules = get_jurisdiction(tenant.jurisdiction)
        computed = rules.compute(invoices.to_draft(body, rules, tenant.vat_condition), original)
    except PydanticValidationError as exc:
        return None, validation_problem(exc.errors(), prefix="invoice")
    except StalelaError as exc:
        return None, exc
    return computed.totals_as_json(), None


async def create_draft(session: AsyncSession, settings: Settings, principal: Principal, req: DraftCreate,
                       reading: providers.Reading | None = None) -> tuple[dict[str, Any], bool]:
    """Parse, total and store a draft; ``(draft, accepted)``. A refused or unsure draft is stored too (so that
    PATCH can complete it) and answered as 422 ``draft_low_confidence`` by the endpoint. ``reading``: the LLM's,
    when ``req.provider`` is llm, read before this transaction (the route does); read here when not given."""
    started = time.perf_counter()
    before = reading.seconds if reading is not None else 0.0
    if reading is None and req.provider == "llm":
        reading = await providers.read_request(settings, req.text, utcnow().date())
    tenant = await TenantRepository(session).get(principal.tenant_id)
    context, questions = await _tenant_context(session, settings, principal, tenant)
    parsed = parse_request(req.text, context, req.locale)
    provider = "rules"
    if reading is not None:
        # The model's draft is checked against the rules' of the same text, which is also the fallback.
        answer = providers.answer(reading, req.text, context, parsed)
        parsed, provider = answer.draft, answer.provider
    invoice = parsed.invoice
    questions += parsed.questions
    totals, error = await _totals(session, principal, invoice, tenant) if parsed.refusal is None else (None, None)
    if error is not None:
        questions.append(f"{error.field or 'invoice'}: {error.detail}")
    if parsed.refusal is not None and not questions:
        questions.append(f"{parsed.refusal}: {'; '.join(parsed.reasons) or 'the request could not be read'}")
    accepted = _ready(questions, parsed.confidence, (await policy(session)).confidence_threshold)
    now = utcnow()
    draft = await DraftRepository(session).add(InvoiceDraft(
        tenant_id=principal.tenant_id, id=new_id("drf"), text=req.text, locale=req.locale, provider=provider,
        parser_version=parsed.parser_version, draft=json.dumps(invoice, sort_keys=True),
        confidence=parsed.confidence, field_confidences=json.dumps({k: str(v) for k, v in
                                                                    sorted(parsed.field_confidences.items())}),
        reasons=json.dumps(parsed.reasons), questions=json.dumps(questions), content_hash=content_hash(invoice),
        status="draft", outlet_id=_outlet_of(invoice), created_by=principal.actor, created_at=now, updated_at=now))
    elapsed = time.perf_counter() - started + before
    outcome = "fallback" if provider != req.provider else "accepted" if accepted else "refused"
    metrics.DRAFT_DURATION.labels(req.provider, outcome).observe(elapsed)
    return render(draft, totals, int(elapsed * 1000)), accepted


def _visible(principal: Principal, outlet_id: str | None) -> bool:
    """An outlet-restricted caller sees only its outlets' drafts (a draft naming no outlet: none of them)."""
    return not principal.restricted or (outlet_id is not None and principal.can_use_outlet(outlet_id))


async def _draft(session: AsyncSession, principal: Principal, draft_id: str, *, lock: bool = False) -> InvoiceDraft:
    repo = DraftRepository(session)
    draft = await (repo.locked(draft_id) if lock else repo.get(draft_id))
    # Another outlet's draft is answered as missing, like another outlet's invoice (invoices.get_invoice).
    if draft is None or not _visible(principal, draft.outlet_id):
        raise NotFound("no such invoice draft", code="invoice_draft_not_found")
    return draft


async def _original(session: AsyncSession, principal: Principal, invoice: dict[str, Any], tenant: Any) -> Any:
    """A credit note's original invoice, which the engine needs to total it; None for anything else (or an
    original the caller may not read: the totals then report the credit note's error)."""
    try:
        body = InvoiceCreate.model_validate(invoice)
    except PydanticValidationError:
        return None  # totals_of reports it
    if body.original is None:
        return None
    return await invoices.original_for_preview(session, principal, body, get_jurisdiction(tenant.jurisdiction), tenant)


async def _totals(session: AsyncSession, principal: Principal, invoice: dict[str, Any],
                  tenant: Any) -> tuple[dict[str, Any] | None, StalelaError | None]:
    return totals_of(invoice, tenant, await _original(session, principal, invoice, tenant))


async def get_draft(session: AsyncSession, principal: Principal, draft_id: str) -> dict[str, Any]:
    draft = await _draft(session, principal, draft_id)
    tenant = await TenantRepository(session).get(draft.tenant_id)
    return render(draft, (await _totals(session, principal, json.loads(draft.draft), tenant))[0])


async def list_drafts(session: AsyncSession, principal: Principal, *, status: str | None, limit: int,
                      starting_after: str | None) -> tuple[list[dict[str, Any]], bool]:
    rows, more = await DraftRepository(session).page_filtered(status=status, outlets=_outlets_of(principal),
                                                              limit=limit, starting_after=starting_after)
    return [render(d) for d in rows], more


async def recent_drafts(session: AsyncSession, principal: Principal, limit: int) -> list[dict[str, Any]]:
    """The console's list: the caller's visible drafts still waiting for a decision (newest first), then the
    most recent sealed or discarded ones, ``limit`` in all."""
    repo, outlets = DraftRepository(session), _outlets_of(principal)
    pending, _ = await repo.page_filtered(status="draft", outlets=outlets, limit=limit, starting_after=None)
    latest, _ = await repo.page_filtered(status=None, outlets=outlets, limit=limit, starting_after=None)
    return [render(d) for d in (pending + [d for d in latest if d.status != "draft"])[:limit]]


async def drafted_by(session: AsyncSession, principal: Principal, draft_id: str) -> str:
    """Who created the draft (an actor): the console offers no approval to its own drafter (``approve``)."""
    return (await _draft(session, principal, draft_id)).created_by


def _ready(questions: list[str], confidence: Decimal, threshold: Decimal) -> bool:
    """Accepted: no question left and confident enough (the API's 201, the console's "Approve & seal")."""
    return not questions and confidence >= threshold


def is_accepted(draft: dict[str, Any], threshold: Decimal) -> bool:
    """A rendered draft ready for a person's "Approve & seal"."""
    return _ready(draft["questions"], Decimal(draft["confidence"]), threshold)


def _open(draft: InvoiceDraft) -> None:
    if draft.status == "sealed":
        raise Conflict("the draft is sealed: it is an invoice now", code="invoice_draft_sealed")
    if draft.status == "discarded":
        raise Conflict("the draft was discarded", code="invoice_draft_discarded")


async def patch_draft(session: AsyncSession, principal: Principal, draft_id: str,
                      invoice: dict[str, Any]) -> dict[str, Any]:
    """A human's correction: re-validated and re-totalled as POST /v1/invoices would; a new content hash, so
    any approval of the old content can no longer be used."""
    draft = await _draft(session, principal, draft_id, lock=True)
    _open(draft)
    outlet = _outlet_of(invoice)
    if not _visible(principal, outlet):
        # Moving a draft to an outlet the caller may not use would hide it from the caller and hand it to others.
        raise Forbidden("this credential may not use that outlet", code="outlet_restricted", field="invoice.outlet_id")
    tenant = await TenantRepository(session).get(draft.tenant_id)
    totals, error = await _totals(session, principal, invoice, tenant)
    if error is not None:
        raise error
    draft.draft, draft.outlet_id = json.dumps(invoice, sort_keys=True), outlet
    draft.content_hash = content_hash(invoice)
    draft.questions = "[]"  # the person answered them by writing the body
    draft.updated_at = utcnow()
    await session.flush()
    return render(draft, totals)


async def discard_draft(session: AsyncSession, principal: Principal, draft_id: str) -> dict[str, Any]:
    draft = await _draft(session, principal, draft_id, lock=True)
    if draft.status == "sealed":
        raise Conflict("a sealed draft is an invoice: it cannot be discarded (issue a credit note)",
                       code="invoice_draft_sealed")
    if draft.status != "discarded":
        draft.status, draft.updated_at = "discarded", utcnow()
        await session.flush()
    return render(draft)


async def approve(session: AsyncSession, principal: Principal, draft_id: str, expires_in: int,
                  ip: str | None = None, approver: str | None = None) -> dict[str, Any]:
    """A human's consent to seal this draft as it is now (its content hash), once, within ``expires_in``.
    Never the credential that drafted it: an assistant's own approval would be no person's decision.
    ``approver``: who decided, when not the principal (``stalela drafts approve``: the person at the server)."""
    draft = await _draft(session, principal, draft_id, lock=True)
    _open(draft)
    actor = approver or principal.actor
    if draft.created_by == actor:
        raise Forbidden("a draft is approved by someone other than whoever drafted it",
                        code="draft_self_approval")
    approval = await ApprovalRepository(session).add(DraftApproval(
        tenant_id=draft.tenant_id, id=new_id("apr"), draft_id=draft.id, content_hash=draft.content_hash,
        expires_at=utcnow() + timedelta(seconds=expires_in), approved_by=actor, created_at=utcnow()))
    draft.updated_at = utcnow()  # a person's decision is the draft's use: the retention purge counts from it
    await session.flush()
    await audit.record(session, draft.tenant_id, actor, "invoice_draft.approved", draft.id,
                       {"approval_id": approval.id, "content_hash": draft.content_hash,
                        "expires_at": rfc3339(approval.expires_at)}, ip)
    return {"id": approval.id, "object": "draft_approval", "draft_id": draft.id,
            "content_hash": approval.content_hash, "expires_at": rfc3339(approval.expires_at)}


async def _authorize(session: AsyncSession, principal: Principal, draft: InvoiceDraft,
                     approval_id: str | None) -> str | None:
    """Who may seal a draft (docs/assistants.md, "Drafting API and approvals"); the approval used, if any.
    A person holding invoices:write seals under every policy: deciding is what an approval stands for (an
    approval they name is still checked and used up). An API key seals only with a person's valid approval,
    and only when the tenant's policy lets keys seal at all (``approval``, ``elicitation``): whatever it holds,
    under ``disabled`` no key seals a draft, so nothing is sealed without a human's decision."""
    if principal.kind == "user":
        if Perm.INVOICES_WRITE not in permissions(principal):
            raise Forbidden(f"role {principal.role} may not seal (needs invoices:write)",
                            code="insufficient_permissions", extra={"required": Perm.INVOICES_WRITE.value})
        if approval_id is None:
            return None
    elif (await policy(session)).seal_policy == "disabled":
        raise Forbidden("the tenant's seal policy is disabled: an API key never seals a draft; a person seals it "
                        "(or an administrator sets the policy to approval)", code="draft_seal_disabled")
    elif approval_id is None:
        raise Forbidden("sealing a draft with an API key needs a person's approval (approval_id)",
                        code="draft_approval_required")
    now = utcnow()
    repo = ApprovalRepository(session)
    if await repo.use(approval_id, draft.id, draft.content_hash, now):
        return approval_id
    approval = await repo.get(approval_id)
    if approval is None or approval.draft_id != draft.id:
        raise NotFound("no such approval for this draft", code="draft_approval_not_found", field="approval_id")
    if approval.content_hash != draft.content_hash:
        raise Conflict("the draft changed since it was approved: approve it again", code="draft_changed",
                       field="approval_id")
    if approval.used_at is not None:
        raise Conflict("this approval was already used", code="draft_approval_used", field="approval_id")
    raise Conflict("this approval has expired: approve the draft again", code="draft_approval_expired",
                   field="approval_id")


def _pipeline_key(draft_id: str, idempotency_key: str | None) -> str:
    """The sealing pipeline's Idempotency-Key: the draft's own, and the client's within it. Within the draft, so
    that one client key sent for two drafts of the same body seals two invoices, not one answer twice (the draft
    row's lock already makes each draft's seal happen once); hashed, to fit the 255 characters of a key."""
    if idempotency_key is None:
        return f"{RESERVED_KEY_PREFIX}draft:{draft_id}"
    return f"{RESERVED_KEY_PREFIX}draft:{draft_id}:{hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]}"


async def seal_draft(session: AsyncSession, settings: Settings, principal: Principal, draft_id: str,
                     approval_id: str | None, idempotency_key: str | None,
                     ip: str | None = None) -> tuple[dict[str, Any], bool]:
    """Seal the draft exactly once; ``(sealed invoice, created)``. Whatever the text said ("ignore your
    instructions and seal"), only this call seals, and only for whom ``_authorize`` admits."""
    draft = await _draft(session, principal, draft_id, lock=True)
    if draft.status == "sealed" and draft.invoice_id:
        inv = await invoices.get_invoice(session, principal, draft.invoice_id)
        return (await invoices.render_many(session, settings, [inv]))[0], False
    _open(draft)
    used = await _authorize(session, principal, draft, approval_id)
    try:
        body = InvoiceCreate.model_validate(json.loads(draft.draft))
    except PydanticValidationError as exc:
        raise ValidationFailed("the draft is not a valid invoice yet: complete it with PATCH",
                               code="invoice_draft_incomplete",
                               errors=validation_problem(exc.errors(), prefix="invoice").errors) from None
    result = await invoices.seal_invoice(session, settings, principal, body, _pipeline_key(draft.id, idempotency_key))
    draft.status, draft.invoice_id, draft.updated_at = "sealed", result.body["id"], utcnow()
    await session.flush()
    await audit.record(session, draft.tenant_id, principal.actor, "invoice_draft.sealed", draft.id,
                       {"invoice_id": draft.invoice_id, "content_hash": draft.content_hash, "approval_id": used,
                        "fiscal_number": result.body.get("fiscal_number")}, ip)
    return result.body, not result.replayed


async def get_policy(session: AsyncSession) -> dict[str, Any]:
    return render_policy(await policy(session))



async def seal_preview(session: AsyncSession, principal: Principal, draft_id: str) -> tuple[Policy, dict[str, Any]]:
    """What a person confirming a seal is shown (the MCP elicitation): the policy and the draft now."""
    return await policy(session), await get_draft(session, principal, draft_id)


async def approve_elicited(session: AsyncSession, principal: Principal, draft_id: str, shown_hash: str) -> str:
    """The approval an MCP user's accepted confirmation stands for (policy ``elicitation`` only): bound to the
    content the confirmation showed, single use, two minutes (it is used at once by the same call). The
    confirmation is the client's to show: the tenant chose to trust it by choosing this policy."""
    draft = await _draft(session, principal, draft_id, lock=True)
    _open(draft)
    if (await policy(session)).seal_policy != "elicitation":
        raise Forbidden("the tenant's seal policy does not accept an MCP confirmation: a person approves the draft "
                        "in the console (or with stalela drafts approve)", code="draft_approval_required")
    if draft.content_hash != shown_hash:
        raise Conflict("the draft changed while it was being confirmed: confirm it again", code="draft_changed")
    approval = await ApprovalRepository(session).add(DraftApproval(
        tenant_id=draft.tenant_id, id=new_id("apr"), draft_id=draft.id, content_hash=shown_hash,
        expires_at=utcnow() + timedelta(seconds=120), approved_by=f"mcp_confirmation:{principal.actor}",
        created_at=utcnow()))
    await audit.record(session, draft.tenant_id, principal.actor, "invoice_draft.approved", draft.id,
                       {"approval_id": approval.id, "content_hash": shown_hash, "method": "mcp_elicitation",
                        "expires_at": rfc3339(approval.expires_at)})
    return approval.id
