"""Sealing many invoices of one tenant in one transaction: the pipeline every seal goes through.

A single ``POST /v1/invoices`` is a group of one; the group committer (``group_commit.py``) gathers
concurrent requests into bigger groups and ``POST /v1/invoices/batch`` hands over up to 1,000 at
once. The results are the same as sealing the items one by one, in order: each keeps its own
counter, chain position and Merkle leaf, and an item that fails consumes nothing and does not
fail the others.

Lock order, the same for every writer of fiscal state (sealing, Z closes, checkpoints): the tenant's
Merkle log first, then outlet series. Holding the log lock serialises all sealing of the tenant,
across processes, so every check below (idempotency keys, references, credited amounts) reads a
state no concurrent sealer can change before this transaction commits.

What a group saves over one-by-one: one BEGIN/COMMIT (the durable flush that bounds throughput),
one lock of the log and of each outlet's series, one read of the tenant, its key and its outlets,
one write of each touched row, and multi-row INSERTs for the new rows.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.auth.principal import Principal
from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.errors import Conflict, Forbidden, StalelaError, ValidationFailed
from stalela.fiscal.core import invoice as core
from stalela.fiscal.core.reports import local_date
from stalela.fiscal.core.rules import Jurisdiction
from stalela.fiscal.core.offline import buyer_document, clear_tax_id, invoice_payload
from stalela.fiscal.core.seal import build_seal, canonical_bytes
from stalela.fiscal.invoices import admission
from stalela.fiscal.invoices.models import IdempotencyRecord, Series
from stalela.fiscal.invoices.repository import (
    IdempotencyRepository,
    InvoiceRepository,
    SeriesRepository,
    SyncStateRepository,
)
from stalela.fiscal.invoices.schemas import InvoiceCreate
from stalela.fiscal.jurisdictions import get_jurisdiction
from stalela.fiscal.ledger.service import LogAppender
from stalela.fiscal.invoices.figures import DayBook, day_position
from stalela.fiscal.signing import registry as keys
from stalela.fiscal.subjects.service import BuyerVault, SealedBuyer
from stalela.fiscal.invoices.buyers import reveal_buyers
from stalela.fiscal.core.disclosure import is_natural_person
from stalela.kit import canonical
from stalela.kit.clock import rfc3339
from stalela.kit.ids import new_id
from stalela.observability import tracing
from stalela.observability.metrics import invoice_sealed, seal_clock, seal_group
from stalela.outbox.service import enqueue_many, event_row
from stalela.tenancy.models import Outlet
from stalela.tenancy.repository import OutletRepository, TenantRepository

# 2: the buyer is committed to (buyer_commitment), not signed in clear (docs/seal-format.md).
SEAL_VERSION = 2
# Jurisdictions' own blocks of the payload, shown as such in the sealed document.
_EXTRA_BLOCKS = ("ar",)
# What a freshly sealed invoice shows of its authority sync (see service.sync_view).
PENDING_SYNC = {"status": "pending", "authority_code": None, "counters": None, "acknowledged_at": None,
                "error": None}
CENTS = Decimal(100)
# A large group (a batch slice) gives the event loop back this often: other tenants' requests in the
# same process wait for a few invoices' work (~1 ms), not for a whole group's (group_commit.py).
YIELD_EVERY = 8


@dataclass
class SealRequest:
    principal: Principal
    body: InvoiceCreate
    idempotency_key: str | None = None
    # The request's trace, for the seal's stage spans when a group commit seals it in another task.
    trace_context: Any = field(default_factory=tracing.current_context)
    # Set by ``prepare``: the invoice computed before it joins a group (see there).
    computed: core.ComputedInvoice | None = None
    rejection: StalelaError | None = None
    lines_json: list[dict[str, Any]] | None = None
    lines_hash: str | None = None
    # Set in the group once admitted: the buyer's commitment and, if personal, its ciphertext.
    buyer: SealedBuyer | None = None


def prepare(request: SealRequest) -> SealRequest:
    """Apply the jurisdiction's rules and compute the totals in the request's own task, before it
    joins a group: the pure CPU work then overlaps the group in flight instead of lengthening the
    group's critical section (the tenant's log lock).

    A rule violation is kept, not raised: the group reports it after the checks that come first
    (outlet restriction, Idempotency-Key, outlet), exactly as if the group had computed it. Credit
    notes are left to the group: their check needs the original, read under the lock.
    """
    jurisdiction = request.principal.jurisdiction
    # Argentina's rules need the issuer's IVA condition, read with the tenant in the group.
    if jurisdiction is None or jurisdiction == "AR" or request.body.original is not None:
        return request
    try:
        rules = get_jurisdiction(jurisdiction)
        computed = rules.compute(to_draft(request.body, rules), None)
    except StalelaError as exc:
        request.rejection = exc
        return request
    request.computed = computed
    request.lines_json = computed.lines_as_json()
    request.lines_hash = core.lines_digest(request.lines_json)
    return request


@dataclass
class SealResult:
    status: int
    body: dict[str, Any]
    replayed: bool = False


Outcome = SealResult | StalelaError


def request_hash(body: InvoiceCreate) -> str:
    return hashlib.sha256(canonical.dumps(body.model_dump(mode="json", exclude_unset=True))).hexdigest()


def to_draft(req: InvoiceCreate, jurisdiction: Jurisdiction, issuer_vat_condition: str | None = None
             ) -> core.InvoiceDraft:
    # The one build shared with the offline merge and the SDK's offline sealer (core.invoice).
    return core.draft_from_request(req.model_dump(), jurisdiction.currency, issuer_vat_condition)


def verification_url(settings: Settings, invoice_id: str, tenant_id: str) -> str:
    # The tenant in the URL says which database holds the invoice (a dedicated tenant's is its own, and a
    # tenant may move between tiers after printing): the page reads there (docs/api.md, "Verification URLs").
    return f"{settings.effective_public_url}/verify/{invoice_id}?t={tenant_id}"


@dataclass
class _Group:
    """What the items of one group share, read once under the log lock."""
    session: AsyncSession
    settings: Settings
    tenant_id: str
    outlets: dict[str, Outlet]
    records: dict[str, IdempotencyRecord]
    taken_references: set[tuple[str, str]]
    # Credit notes admitted earlier in this group, not yet flushed, per cited fiscal number.
    credited: dict[str, int] = field(default_factory=dict)
    series: dict[tuple[str, str], Series] = field(default_factory=dict)  # by (outlet id, series code)
    # New rows, written in a few multi-row INSERTs once the group is sealed.
    invoices: list[dict] = field(default_factory=list)
    syncs: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    idempotency: list[dict] = field(default_factory=list)
    vault: BuyerVault | None = None
    gates: list[admission.Gate] = field(default_factory=list)  # quotas and the like (admission.py)


async def seal_many(session: AsyncSession, settings: Settings, tenant_id: str,
                    requests: list[SealRequest]) -> list[Outcome]:
    """Seal ``requests`` (all of ``tenant_id``) in order in the caller's transaction; flushes, never commits.

    Returns one outcome per request: its result, or the error that rejected it (nothing of a
    rejected item is written). An exception escaping (database, key store) means nothing of the
    group may be committed.
    """
    clock = seal_clock([r.trace_context for r in requests if r.trace_context is not None])
    log = await LogAppender.open(session, tenant_id)
    invoices = InvoiceRepository(session)
    keyed = [r.idempotency_key for r in requests if r.idempotency_key is not None]
    group = _Group(
        session=session, settings=settings, tenant_id=tenant_id,
        outlets=await OutletRepository(session).get_many({r.body.outlet_id for r in requests}),
        records=await IdempotencyRepository(session).find_many(keyed) if keyed else {},
        taken_references=await invoices.references_taken(
            {(r.body.outlet_id, r.body.reference) for r in requests if r.body.reference is not None}),
    )
    group.vault = BuyerVault(session, settings, tenant_id)
    group.gates = await admission.open_gates(session, settings, tenant_id)
    await group.vault.prefetch([r.body.buyer.model_dump() for r in requests if r.body.buyer is not None])
    tenant = await TenantRepository(session).get(tenant_id)
    jurisdiction = get_jurisdiction(tenant.jurisdiction)
    key = await keys.active_key(session, tenant_id)
    book = DayBook(session)
    sealed_keys: dict[str, tuple[str, SealResult]] = {}
    outcomes: list[Outcome | None] = []
    validated: list[tuple[int, SealRequest, str, core.ComputedInvoice | None]] = []
    admitted_keys: set[str] = set()
    for index, request in enumerate(requests):
        if index % YIELD_EVERY == YIELD_EVERY - 1:
            await asyncio.sleep(0)
        key_ = request.idempotency_key
        try:
            if key_ is not None and key_ in admitted_keys:
                # The same key twice in one group: decided against the first once it is sealed.
                if not request.principal.can_use_outlet(request.body.outlet_id):
                    raise _outlet_restricted()
                outcomes.append(None)
                validated.append((index, request, request_hash(request.body), None))
                continue
            replay, fingerprint = await _admit(group, request)
            if replay is not None:
                outcomes.append(replay)
                continue
            original = (await _original(group, invoices, jurisdiction, tenant, request)
                        if request.body.original else None)
            if request.rejection is not None and original is None \
                    and request.principal.jurisdiction == jurisdiction.code:
                raise request.rejection
            computed = (request.computed if request.computed is not None and original is None
                        and request.computed.jurisdiction == jurisdiction.code
                        else jurisdiction.compute(to_draft(request.body, jurisdiction, tenant.vat_condition),
                                                  original))  # FiscalRuleViolation
            jurisdiction.check_issue_date(computed, local_date(utcnow(), group.outlets[request.body.outlet_id].timezone))
            admission.admit(group.gates, request)  # a quota: after every rule, before any buyer is written
            try:
                # Last: a refusal here (subject_erased) must come after every rule, like any rejection.
                request.buyer = await group.vault.seal(
                    buyer_json(computed, request.body),
                    new_subject=bool(request.body.buyer and request.body.buyer.new_subject))
            except StalelaError:
                admission.release(group.gates, request)
                raise
        except StalelaError as exc:
            outcomes.append(exc)
            continue
        outcomes.append(None)  # filled in when sealed below
        validated.append((index, request, fingerprint, computed))
        _remember(group, request, computed)
        if key_ is not None:
            admitted_keys.add(key_)
    sealing = sum(1 for *_, computed in validated if computed is not None)
    clock.lap("validate", sealing)

    # Series locks in one deterministic order, after the log lock (see the module's docstring).
    wanted = sorted({(request.body.outlet_id, jurisdiction.series_code(request.body.type))
                     for _, request, _, computed in validated if computed})
    group.series = await SeriesRepository(session).lock_series(tenant_id, wanted)
    touched = sorted({outlet_id for outlet_id, _ in wanted})
    await book.preload(touched)
    clock.lap("number", sealing)

    # Numbered and chained in order; then signed all at once (one trip to the key store, which for
    # an HSM is a thread hop per call); then stored in order.
    numbered = [_number(group, tenant, jurisdiction, key, request, computed)
                for _, request, _, computed in validated if computed is not None]
    signatures = iter(await keys.sign_many(settings, key, [n.signed for n in numbered]))
    numbered_iter = iter(numbered)
    clock.lap("sign", sealing)

    for position, (index, request, fingerprint, computed) in enumerate(validated):
        if position % YIELD_EVERY == YIELD_EVERY - 1:
            await asyncio.sleep(0)
        if computed is None:
            first_fingerprint, first = sealed_keys[request.idempotency_key]
            outcomes[index] = (SealResult(first.status, first.body, replayed=True) if first_fingerprint == fingerprint
                               else _key_reused())
            continue
        result = await _store(group, book, log, key, request, fingerprint, next(numbered_iter), next(signatures))
        outcomes[index] = result
        if request.idempotency_key is not None:
            sealed_keys[request.idempotency_key] = (fingerprint, result)
    await group.vault.flush(utcnow())
    await InvoiceRepository(session).insert_sealed(group.invoices, group.idempotency)
    await SyncStateRepository(session).insert_pending(group.syncs)
    await enqueue_many(session, group.events)
    await log.write()
    await book.write()
    await session.flush()
    clock.lap("store", sealing)
    seal_group(session, sealing)
    return outcomes


async def _admit(group: _Group, request: SealRequest) -> tuple[SealResult | None, str]:
    """Checks that need the database (the group's prefetched reads); a replay when the key was used."""
    body = request.body
    # Checked before any replay, so a till's key can never read another outlet's invoice through one.
    if not request.principal.can_use_outlet(body.outlet_id):
        raise _outlet_restricted()
    key = request.idempotency_key
    fingerprint = request_hash(body) if key is not None else ""  # only idempotency records need it
    if key is not None:
        record = group.records.get(key)
        if record is not None and record.expires_at <= utcnow():
            await IdempotencyRepository(group.session).delete(record)  # past retention: the key is free again
            del group.records[key]
        elif record is not None:
            if record.request_hash != fingerprint:
                raise _key_reused()
            body = await _with_buyer(group, json.loads(record.response))
            return SealResult(record.status_code, body, replayed=True), fingerprint
    outlet = group.outlets.get(body.outlet_id)
    if outlet is None:
        raise ValidationFailed("no such outlet", code="outlet_not_found", field="outlet_id")
    if outlet.status != "active":
        raise Conflict("the outlet is not active", code="outlet_inactive", field="outlet_id")
    if body.reference is not None and (outlet.id, body.reference) in group.taken_references:
        raise Conflict("this reference was already sealed for this outlet", code="reference_already_used",
                       field="reference")
    return None, fingerprint


def _outlet_restricted() -> Forbidden:
    return Forbidden("this API key may only seal for its own outlet", code="api_key_outlet_restricted",
                     field="outlet_id")


def _key_reused() -> ValidationFailed:
    return ValidationFailed("this Idempotency-Key was used with a different request body",
                            code="idempotency_key_reused", field="Idempotency-Key")


def _remember(group: _Group, request: SealRequest, computed: core.ComputedInvoice) -> None:
    """What later items of the group must see of this one before it is flushed."""
    body = request.body
    if body.reference is not None:
        group.taken_references.add((body.outlet_id, body.reference))
    if body.original is not None and body.type in get_jurisdiction(computed.jurisdiction).credit_note_types:
        group.credited[body.original] = group.credited.get(body.original, 0) + int(computed.total * CENTS)


async def _original(group: _Group, invoices: InvoiceRepository, jurisdiction: Jurisdiction, tenant: Any,
                    request: SealRequest) -> core.OriginalInvoice | None:
    """The invoice a credit note cites, as the caller may see it: None (answered exactly as a number
    that does not exist) when it is on an outlet the caller may not use, or on another outlet than
    the credit note's unless STALELA_CREDIT_NOTES_ACROSS_OUTLETS allows that. A till's key must neither credit
    another outlet's sale nor learn, from the error texts, that it exists or what it amounts to.

    ``original`` names the fiscal number in the DRC and the invoice id in Argentina (numbers repeat
    there across receipt types and points of sale); credited amounts are summed under that same name."""
    cited = request.body.original
    found = await (invoices.get(cited) if jurisdiction.original_by == "id" else invoices.by_fiscal_number(cited))
    if found is None or not request.principal.can_use_outlet(found.outlet_id):
        return None
    if found.outlet_id != request.body.outlet_id and not group.settings.credit_notes_across_outlets:
        return None
    credited = await invoices.credited_cents(cited, jurisdiction.credit_note_types,
                                             skip_refused=jurisdiction.original_by == "id") \
        + group.credited.get(cited, 0)
    extra = None
    if jurisdiction.original_by == "id":
        sync = (await SyncStateRepository(group.session).views([found.id])).get(found.id)
        if sync is not None and sync[0].status in ("rejected", "failed"):
            return None  # the authority never accepted it: there is no receipt to correct (docs/jurisdictions/ar.md)
        block = json.loads(found.document).get(jurisdiction.code.lower())
        # CbtesAsoc names the original's issuer: this tenant.
        extra = {**block, "cuit": tenant.tax_id} if block is not None else None
    return core.OriginalInvoice(fiscal_number=found.fiscal_number, type=found.type, extra=extra,
                                total=Decimal(found.total_cents) / CENTS, credited_total=Decimal(credited) / CENTS)


@dataclass
class _Numbered:
    """An invoice given its number and chain position, waiting for its signature."""
    outlet: Outlet
    series: Series
    computed: core.ComputedInvoice
    invoice_id: str
    counter: int
    fiscal_number: str
    issued: Any
    payload: dict[str, Any]
    signed: bytes


def _number(group: _Group, tenant: Any, jurisdiction: Jurisdiction, key: Any, request: SealRequest,
            computed: core.ComputedInvoice) -> _Numbered:
    req = request.body
    outlet = group.outlets[req.outlet_id]
    series = group.series[(outlet.id, jurisdiction.series_code(req.type))]
    counter = series.counter + 1
    fiscal_number = jurisdiction.fiscal_number(outlet.code, outlet.pos_number, req.type, counter, series.generation)
    issued = utcnow()
    invoice_id = new_id("inv")
    totals = computed.totals_as_json()
    extra = None
    if computed.extra is not None:
        # The jurisdiction's block, completed with what only numbering knows (Argentina: the point of
        # sale, the receipt number and its date, CbteFch, in the outlet's timezone).
        extra = (jurisdiction.code.lower(), {
            **computed.extra, "point_of_sale": outlet.pos_number, "number": counter,
            "date": local_date(issued, outlet.timezone).isoformat(),
            # A person's document number is not signed in clear (v2): the agent reads it from the subject.
            **({"doc_number": None} if _personal_doc(request.buyer) else {})})
    payload = invoice_payload(
        version=SEAL_VERSION, jurisdiction=jurisdiction.code, tenant_id=group.tenant_id, seller_tax_id=tenant.tax_id,
        outlet_id=outlet.id, series_id=series.id, counter=counter, fiscal_number=fiscal_number, invoice_id=invoice_id,
        type=req.type, price_mode=computed.price_mode, issued_at=rfc3339(issued), currency=computed.currency,
        totals=totals, lines_hash=request.lines_hash or computed.lines_digest(), line_count=len(computed.lines),
        # v2: in clear only a legal person's tax id; any buyer is committed to, salted (core/disclosure.py).
        buyer_tax_id=_clear_tax_id(request.buyer),
        buyer_commitment=request.buyer.commitment if request.buyer else None,
        nature=req.nature, original=req.original, exchange=computed.exchange_as_json(), key_id=key.id,
        prev_hash=series.last_hash,
        # Set when aligned with the authority's numbering before its first seal.
        series_first=series.first_counter, extra=extra)
    signed = canonical_bytes(payload)
    # The chain needs only the hash of what is signed, not the signature: the next invoice of the
    # outlet can be numbered before this one is signed.
    series.counter = counter
    series.last_hash = hashlib.sha256(signed).hexdigest()
    series.updated_at = issued
    return _Numbered(outlet, series, computed, invoice_id, counter, fiscal_number, issued, payload, signed)


async def _store(group: _Group, book: DayBook, log: LogAppender, key: Any, request: SealRequest, fingerprint: str,
                 n: _Numbered, signature: bytes) -> SealResult:
    session, settings, req, computed = group.session, group.settings, request.body, n.computed
    sold_to = request.buyer
    seal = build_seal(n.payload, signature, key.id, canonical_payload=n.signed)
    document = sealed_document(settings, group.tenant_id, n.invoice_id, n.outlet.id, req, computed, n.payload,
                               sold_to, request.lines_json)
    leaf_index = log.append(seal["hash"])
    group.invoices.append(invoice_row(group.tenant_id, n.invoice_id, leaf_index, n.outlet.id, n.series.id, req,
                                      computed, n.issued, seal, n.signed, document, sold_to))
    # The business day's figures (Z/X reports), by the invoice's place in its outlet's sequence.
    await book.add(n.outlet, day_position(n.series.code, n.counter, leaf_index), n.issued, computed, sealed=document,
                   buyer_subject=sold_to.subject_id if sold_to else None)
    # Visible as pending at once (sync status, dashboards), before any worker picks the event up.
    group.syncs.append(sync_row(group.tenant_id, n.invoice_id, n.outlet.id, n.issued))
    group.events.append(sealed_event(group.tenant_id, n.invoice_id, n.outlet.id, req.type, n.payload))
    stored = {**document, "seal": seal, "sync": PENDING_SYNC}
    body = with_buyer(stored, sold_to)
    if request.idempotency_key is not None:
        # The record keeps no personal data either: a replay reads the buyer back (_with_buyer).
        group.idempotency.append(dict(
            tenant_id=group.tenant_id, key=request.idempotency_key, request_hash=fingerprint, status_code=201,
            response=json.dumps(stored), created_at=n.issued,
            expires_at=n.issued + timedelta(days=settings.idempotency_retention_days),
        ))
    invoice_sealed(session, group.tenant_id, n.outlet.id, req.type)  # counted when the transaction commits
    return SealResult(201, body)


# What every sealed invoice leaves, online or merged from a device (offline_merge.py): built here, once.


def sealed_document(settings: Settings, tenant_id: str, invoice_id: str, outlet_id: str, req: InvoiceCreate,
                    computed: core.ComputedInvoice, payload: dict[str, Any], sold_to: SealedBuyer | None,
                    lines_json: list[dict[str, Any]] | None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The sealed invoice as stored and answered, minus its seal (and a personal buyer: see ``invoice_row``).
    ``extra``: members only some invoices have (an offline invoice's ``offline``), before ``qr``."""
    sealed_away = sold_to is not None and sold_to.subject_id is not None
    return {
        "id": invoice_id,
        "object": "invoice",
        "tenant_id": tenant_id,
        "outlet_id": outlet_id,
        "fiscal_number": payload["fiscal_number"],
        "counter": payload["counter"],
        "type": req.type,
        "price_mode": computed.price_mode,
        "issued_at": payload["issued_at"],
        "currency": computed.currency,
        "reference": req.reference,
        # A personal buyer is stored encrypted (buyer_sealed), never in the document; shown by render.
        "buyer": None if sealed_away else (sold_to.buyer if sold_to else None),
        "buyer_salt": None if sealed_away else (sold_to.salt if sold_to else None),
        "nature": req.nature,
        "original": req.original,
        "payments": computed.payments_as_json(),
        "exchange": payload["exchange"],
        "lines": lines_json if lines_json is not None else computed.lines_as_json(),
        "totals": payload["totals"],
        **{k: payload[k] for k in _EXTRA_BLOCKS if k in payload},
        **(extra or {}),
        "qr": verification_url(settings, invoice_id, tenant_id),
    }


def invoice_row(tenant_id: str, invoice_id: str, leaf_index: int, outlet_id: str, series_id: str, req: InvoiceCreate,
                computed: core.ComputedInvoice, issued: Any, seal: dict[str, Any], signed: bytes,
                document: dict[str, Any], sold_to: SealedBuyer | None, **more: Any) -> dict[str, Any]:
    """The invoice's row for ``InvoiceRepository.insert_sealed``. ``more``: columns only some rows set
    (an offline invoice's ``origin`` and ``merged_at``; rows of one INSERT must have the same keys)."""
    sealed_away = sold_to is not None and sold_to.subject_id is not None
    payload = seal["payload"]
    return dict(
        tenant_id=tenant_id, id=invoice_id, leaf_index=leaf_index, outlet_id=outlet_id, series_id=series_id,
        counter=payload["counter"], fiscal_number=payload["fiscal_number"], type=req.type, issued_at=issued,
        reference=req.reference, original=req.original, total_cents=int(computed.total * CENTS),
        key_id=seal["key_id"], seal_hash=seal["hash"], signature=seal["signature"], payload=signed.decode(),
        document=json.dumps(document), buyer_subject=sold_to.subject_id if sealed_away else None,
        buyer_sealed=sold_to.ciphertext if sealed_away else None, **more,
    )


def sync_row(tenant_id: str, invoice_id: str, outlet_id: str, sealed_at: Any) -> dict[str, Any]:
    return dict(tenant_id=tenant_id, invoice_id=invoice_id, outlet_id=outlet_id, status="pending", attempts=0,
                sealed_at=sealed_at, updated_at=sealed_at)


def sealed_event(tenant_id: str, invoice_id: str, outlet_id: str, type_: str, payload: dict[str, Any],
                 **more: Any) -> dict[str, Any]:
    """The ``invoice.sealed`` outbox event (the authority sync, webhooks, usage metering consume it)."""
    return event_row(tenant_id, "invoice.sealed", {
        "invoice_id": invoice_id, "outlet_id": outlet_id, "fiscal_number": payload["fiscal_number"], "type": type_,
        "total": payload["total"], "issued_at": payload["issued_at"], **more,
    })


def with_buyer(stored: dict[str, Any], sold_to: SealedBuyer | None) -> dict[str, Any]:
    """The answer: the stored document with a personal buyer shown again (it is stored encrypted apart)."""
    if sold_to is not None and sold_to.subject_id is not None:
        return {**stored, "buyer": sold_to.buyer, "buyer_salt": sold_to.salt}
    return stored


def buyer_json(computed: core.ComputedInvoice, req: InvoiceCreate) -> dict[str, Any] | None:
    """The document's ``buyer``: the jurisdiction's buyer object plus the contacts given (only those)."""
    return buyer_document(computed.buyer_as_json(), req.buyer.model_dump() if req.buyer else None)


def _clear_tax_id(buyer: SealedBuyer | None) -> str | None:
    return clear_tax_id(buyer.buyer) if buyer is not None else None


def _personal_doc(buyer: SealedBuyer | None) -> bool:
    return buyer is not None and buyer.subject_id is not None and is_natural_person(buyer.buyer)


async def _with_buyer(group: _Group, body: dict[str, Any]) -> dict[str, Any]:
    """A replayed answer with its buyer, read back from the invoice (the record holds none)."""
    if body.get("buyer") is not None or not (body.get("seal") or {}).get("payload", {}).get("buyer_commitment"):
        return body
    found = await InvoiceRepository(group.session).get(body["id"])
    if found is None or found.buyer_subject is None:
        return body
    shown = await reveal_buyers(group.session, group.settings, group.tenant_id, [found], purpose="tenant")
    return {**body, **shown.get(found.id, {})}
