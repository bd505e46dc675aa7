"""The sealing pipeline: validate -> compute -> number -> sign -> chain -> store -> outbox.

Everything happens in the caller's transaction, so a failure at any step consumes no number. The
order is chosen to hold the outlet's series lock as briefly as possible: all validation (including
the credit-note lookup) runs before the lock is taken; only numbering, signing and the inserts run
under it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import rfc8785
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.auth.principal import Principal
from stalela.authority.models import InvoiceSync
from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.errors import Conflict, Forbidden, NotFound, ValidationFailed
from stalela.fiscal.core import invoice as core
from stalela.fiscal.core.numbering import format_fiscal_number
from stalela.fiscal.core.seal import build_seal, canonical_bytes
from stalela.fiscal.invoices.models import IdempotencyRecord, Invoice
from stalela.fiscal.invoices.repository import IdempotencyRepository, InvoiceRepository, SeriesRepository
from stalela.fiscal.invoices.schemas import InvoiceCreate, InvoiceFilters
from stalela.fiscal.jurisdictions import get_jurisdiction
from stalela.fiscal.signing import registry as keys
from stalela.fiscal.ledger.service import append_leaf
from stalela.fiscal.reports.figures import record_invoice
from stalela.kit.clock import rfc3339
from stalela.kit.ids import new_id
from stalela.observability import context as log_context
from stalela.observability.metrics import invoice_sealed, seal_clock
from stalela.outbox.service import enqueue
from stalela.tenancy.repository import OutletRepository, TenantRepository

SEAL_VERSION = 1
# What a freshly sealed invoice shows of its authority sync (see authority.service.sync_view).
PENDING_SYNC = {"status": "pending", "authority_code": None, "counters": None, "acknowledged_at": None,
                "error": None}
CENTS = Decimal(100)


@dataclass
class SealResult:
    status: int
    body: dict[str, Any]
    replayed: bool = False


def request_hash(body: InvoiceCreate) -> str:
    return hashlib.sha256(rfc8785.dumps(body.model_dump(mode="json", exclude_unset=True))).hexdigest()


def to_draft(req: InvoiceCreate) -> core.InvoiceDraft:
    return core.InvoiceDraft(
        type=req.type,
        price_mode=req.price_mode,
        lines=tuple(
            core.DraftLine(description=ln.description, code=ln.code, item_type=ln.item_type, tax_group=ln.tax_group,
                           quantity=ln.quantity, unit_price=ln.unit_price)
            for ln in req.lines
        ),
        buyer=core.Buyer(type=req.buyer.type, name=req.buyer.name, tax_id=req.buyer.tax_id,
                         exemption_ref=req.buyer.exemption_ref) if req.buyer else None,
        nature=req.nature,
        original=req.original,
        payments=tuple(core.Payment(method=p.method, amount=p.amount) for p in req.payments)
        if req.payments is not None else None,
        currency=req.currency,
        exchange=core.Exchange(currency=req.exchange.currency, rate=req.exchange.rate, date=req.exchange.date)
        if req.exchange else None,
    )


async def seal_invoice(
    session: AsyncSession, settings: Settings, principal: Principal, req: InvoiceCreate, idempotency_key: str | None
) -> SealResult:
    tenant_id = principal.tenant_id
    clock = seal_clock()
    log_context.bind(outlet_id=req.outlet_id)
    invoices = InvoiceRepository(session)
    fingerprint = request_hash(req)

    # Checked before any replay, so a till's key can never read another outlet's invoice through one.
    if not principal.can_use_outlet(req.outlet_id):
        raise Forbidden("this API key may only seal for its own outlet", code="api_key_outlet_restricted",
                        field="outlet_id")
    if idempotency_key is not None:
        if not await invoices.lock_key(f"idem:{tenant_id}:{idempotency_key}"):
            raise Conflict("a request with this Idempotency-Key is still being processed",
                           code="idempotency_key_in_use", headers={"Retry-After": "1"})
        idempotency = IdempotencyRepository(session)
        record = await idempotency.find(idempotency_key)
        if record is not None and record.expires_at <= utcnow():
            await idempotency.delete(record)  # past retention: the key is free again
        elif record is not None:
            if record.request_hash != fingerprint:
                raise ValidationFailed("this Idempotency-Key was used with a different request body",
                                       code="idempotency_key_reused", field="Idempotency-Key")
            return SealResult(record.status_code, json.loads(record.response), replayed=True)

    tenant = await TenantRepository(session).get(tenant_id)
    outlet = await OutletRepository(session).get(req.outlet_id)
    if outlet is None:
        raise ValidationFailed("no such outlet", code="outlet_not_found", field="outlet_id")
    if outlet.status != "active":
        raise Conflict("the outlet is not active", code="outlet_inactive", field="outlet_id")
    if req.reference is not None and await invoices.reference_taken(outlet.id, req.reference):
        raise Conflict("this reference was already sealed for this outlet", code="reference_already_used",
                       field="reference")

    jurisdiction = get_jurisdiction(tenant.jurisdiction)
    draft = to_draft(req)
    original = await _original(invoices, tenant_id, req.original) if req.original else None
    computed = jurisdiction.compute(draft, original)  # raises FiscalRuleViolation (422)
    clock.lap("validate")

    key = await keys.active_key(session, tenant_id)
    series = await SeriesRepository(session).lock_for_outlet(tenant_id, outlet.id)
    counter = series.counter + 1
    fiscal_number = format_fiscal_number(outlet.code, counter)
    issued = utcnow()
    invoice_id = new_id("inv")
    log_context.bind(invoice_id=invoice_id)
    clock.lap("number")
    payload = {
        "v": SEAL_VERSION,
        "jurisdiction": jurisdiction.code,
        "tenant_id": tenant_id,
        "seller_tax_id": tenant.tax_id,
        "outlet_id": outlet.id,
        "series_id": series.id,
        "counter": counter,
        "fiscal_number": fiscal_number,
        "invoice_id": invoice_id,
        "type": req.type,
        "price_mode": req.price_mode,
        "issued_at": rfc3339(issued),
        "currency": req.currency,
        "totals": computed.totals_as_json(),
        "total": computed.totals_as_json()["total"],
        "lines_hash": computed.lines_digest(),
        "line_count": len(computed.lines),
        "buyer_tax_id": req.buyer.tax_id if req.buyer and req.buyer.tax_id else None,
        "nature": req.nature,
        "original": req.original,
        "exchange": computed.exchange_as_json(),
        "key_id": key.id,
        "prev_hash": series.last_hash,
    }
    canonical = canonical_bytes(payload)
    signature = await keys.sign(settings, key, canonical)
    seal = build_seal(payload, signature, key.id)
    clock.lap("sign")

    document = {
        "id": invoice_id,
        "object": "invoice",
        "tenant_id": tenant_id,
        "outlet_id": outlet.id,
        "fiscal_number": fiscal_number,
        "counter": counter,
        "type": req.type,
        "price_mode": req.price_mode,
        "issued_at": payload["issued_at"],
        "currency": req.currency,
        "reference": req.reference,
        "buyer": computed.buyer_as_json(),
        "nature": req.nature,
        "original": req.original,
        "payments": computed.payments_as_json(),
        "exchange": computed.exchange_as_json(),
        "lines": computed.lines_as_json(),
        "totals": computed.totals_as_json(),
        "qr": verification_url(settings, invoice_id),
    }
    leaf_index = await append_leaf(session, tenant_id, seal["hash"])
    session.add(Invoice(
        tenant_id=tenant_id, id=invoice_id, leaf_index=leaf_index, outlet_id=outlet.id, series_id=series.id, counter=counter,
        fiscal_number=fiscal_number, type=req.type, issued_at=issued, reference=req.reference,
        original=req.original, total_cents=int(computed.total * CENTS), key_id=key.id, seal_hash=seal["hash"],
        signature=seal["signature"], payload=canonical.decode(), document=json.dumps(document),
    ))
    series.counter = counter
    series.last_hash = seal["hash"]
    series.updated_at = issued
    await record_invoice(session, outlet, counter, issued, computed)  # the business day's figures (Z/X reports)
    # Visible as pending at once (sync status, dashboards), before any worker picks the event up.
    session.add(InvoiceSync(tenant_id=tenant_id, invoice_id=invoice_id, outlet_id=outlet.id, status="pending",
                            attempts=0, sealed_at=issued, updated_at=issued))
    enqueue(session, tenant_id, "invoice.sealed", {
        "invoice_id": invoice_id, "outlet_id": outlet.id, "fiscal_number": fiscal_number, "type": req.type,
        "total": payload["total"], "issued_at": payload["issued_at"],
    })
    body = {**present(document, seal), "sync": PENDING_SYNC}
    if idempotency_key is not None:
        session.add(IdempotencyRecord(
            tenant_id=tenant_id, key=idempotency_key, request_hash=fingerprint, status_code=201,
            response=json.dumps(body), created_at=issued,
            expires_at=issued + timedelta(days=settings.idempotency_retention_days),
        ))
    try:
        await session.flush()
    except IntegrityError as exc:
        # The reference check above raced with a concurrent seal of the same reference; anything
        # else is a real fault and must surface as one.
        if req.reference is None or "reference" not in str(exc.orig):
            raise
        raise Conflict("this reference was already sealed for this outlet", code="reference_already_used",
                       field="reference") from exc
    clock.lap("store")
    invoice_sealed(session, tenant_id, outlet.id, req.type)  # counted when the request's transaction commits
    return SealResult(201, body)


async def _original(invoices: InvoiceRepository, tenant_id: str, fiscal_number: str) -> core.OriginalInvoice | None:
    # Two credit notes against one original must not both pass the "never more than it" check.
    await invoices.wait_lock_key(f"credit:{tenant_id}:{fiscal_number}")
    found = await invoices.by_fiscal_number(fiscal_number)
    if found is None:
        return None
    credited = await invoices.credited_cents(fiscal_number)
    return core.OriginalInvoice(
        fiscal_number=found.fiscal_number, type=found.type, total=Decimal(found.total_cents) / CENTS,
        credited_total=Decimal(credited) / CENTS,
    )


def verification_url(settings: Settings, invoice_id: str) -> str:
    return f"{settings.effective_public_url}/verify/{invoice_id}"


def present(document: dict[str, Any], seal: dict[str, Any]) -> dict[str, Any]:
    return {**document, "seal": seal}


def stored_seal(inv: Invoice) -> dict[str, Any]:
    return {"payload": json.loads(inv.payload), "hash": inv.seal_hash, "signature": inv.signature,
            "key_id": inv.key_id, "algorithm": "ES256"}


def render(inv: Invoice) -> dict[str, Any]:
    return present(json.loads(inv.document), stored_seal(inv))


async def get_invoice(session: AsyncSession, principal: Principal, invoice_id: str) -> Invoice:
    inv = await InvoiceRepository(session).get(invoice_id)
    if inv is None or not principal.can_use_outlet(inv.outlet_id):
        raise NotFound("no such invoice", code="invoice_not_found")
    return inv


async def list_invoices(
    session: AsyncSession, principal: Principal, filters: InvoiceFilters, *, limit: int, starting_after: str | None
) -> tuple[list[Invoice], bool]:
    return await InvoiceRepository(session).search(
        filters, outlets_only=principal.outlet_ids if principal.outlet_id is None else frozenset({principal.outlet_id}),
        limit=limit, starting_after=starting_after
    )

