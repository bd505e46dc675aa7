"""Invoices: sealing (through ``sealing.seal_many``, where the pipeline lives), reading, listing.

Everything happens in the caller's transaction, so a failure at any step consumes no number.
"""
from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.auth.principal import Principal
from stalela.config import Settings
from stalela.errors import NotFound, StalelaError, ValidationFailed
from stalela.fiscal.core.invoice import OriginalInvoice
from stalela.fiscal.invoices import pdf
from stalela.fiscal.invoices.sealing import CENTS
from stalela.fiscal.invoices.buyers import reveal_buyers
from stalela.fiscal.subjects.service import Purpose
from stalela.fiscal.invoices.models import AuthorityAck, Invoice, InvoiceSync
from stalela.fiscal.invoices.repository import InvoiceRepository, SyncStateRepository
from stalela.fiscal.invoices.schemas import InvoiceCreate, InvoiceFilters
from stalela.fiscal.invoices.sealing import (  # noqa: F401  (re-exported: the API of this package)
    PENDING_SYNC,
    SealRequest,
    SealResult,
    request_hash,
    seal_many,
    to_draft,
    verification_url,
)
from stalela.kit.clock import rfc3339
from stalela.observability import context as log_context
from stalela.i18n import LANGUAGES, tenant_language
from stalela.tenancy.models import Outlet, Tenant
from stalela.tenancy.repository import OutletRepository, TenantLogoRepository, TenantRepository


async def seal_invoice(
    session: AsyncSession, settings: Settings, principal: Principal, req: InvoiceCreate, idempotency_key: str | None
) -> SealResult:
    """Seal one invoice in the caller's transaction (a group of one); raises what rejected it."""
    [outcome] = await seal_many(session, settings, principal.tenant_id,
                                [SealRequest(principal, req, idempotency_key)])
    if isinstance(outcome, StalelaError):
        raise outcome
    log_context.bind(outlet_id=req.outlet_id, invoice_id=outcome.body.get("id"))
    return outcome


def present(document: dict[str, Any], seal: dict[str, Any]) -> dict[str, Any]:
    return {**document, "seal": seal}


def stored_seal(inv: Invoice) -> dict[str, Any]:
    return {"payload": json.loads(inv.payload), "hash": inv.seal_hash, "signature": inv.signature,
            "key_id": inv.key_id, "algorithm": "ES256"}


def render(inv: Invoice) -> dict[str, Any]:
    """The sealed invoice as stored: a v2 buyer with personal data is absent (``render_many`` adds it)."""
    return present(json.loads(inv.document), stored_seal(inv))


async def render_many(session: AsyncSession, settings: Settings, invoices: list[Invoice], *,
                      purpose: Purpose = "tenant") -> list[dict[str, Any]]:
    """The sealed invoices with their buyers, as ``purpose`` may see them (see buyers.py)."""
    buyers = await reveal_buyers(session, settings, invoices[0].tenant_id, invoices, purpose=purpose) \
        if invoices else {}
    return [{**render(inv), **buyers.get(inv.id, {})} for inv in invoices]


async def subject_invoice_ids(session: AsyncSession, subject_id: str) -> list[str]:
    """The invoices naming a data subject (erasure, portability)."""
    return await InvoiceRepository(session).by_subject(subject_id)


def sync_view(row: InvoiceSync | None, ack: AuthorityAck | None) -> dict[str, Any]:
    """Where the invoice stands with its authority. ``authority_code`` is the DGI's code or ARCA's
    CAE; an authority's own details (ARCA: ``cae_due``, ``result``, ``observations``,
    ``arca_qr_url``) are added as they were recorded."""
    if row is None:
        return {"status": "pending", "authority_code": None, "counters": None, "acknowledged_at": None, "error": None}
    return {
        "status": row.status,
        "authority_code": ack.code if ack else None,
        "counters": ack.counters if ack else None,
        "acknowledged_at": rfc3339(ack.created_at) if ack else None,
        "error": {"code": row.error_code, "detail": row.error} if row.error_code else None,
        **(json.loads(row.details) if row.details else {}),
    }


async def sync_views(session: AsyncSession, invoice_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each invoice's standing with its authority, as the invoice API shows it (``sync``)."""
    views = await SyncStateRepository(session).views(invoice_ids)
    return {i: sync_view(*views.get(i, (None, None))) for i in invoice_ids}


async def get_invoice(session: AsyncSession, principal: Principal, invoice_id: str) -> Invoice:
    inv = await InvoiceRepository(session).get(invoice_id)
    if inv is None or not principal.can_use_outlet(inv.outlet_id):
        raise NotFound("no such invoice", code="invoice_not_found")
    return inv


def checked_language(lang: str | None) -> str | None:
    """A document's asked language (``?lang=``), checked: 422 ``invalid_locale``; None: the tenant's."""
    if lang is not None and lang not in LANGUAGES:
        raise ValidationFailed(f"lang: one of {', '.join(LANGUAGES)}", code="invalid_locale", field="lang")
    return lang


def pdf_options(layout: str | None, lang: str | None) -> tuple[str, str | None]:
    """The asked layout and language, checked: 422 ``invalid_layout`` / ``invalid_locale``."""
    layout = layout or "a4"
    if layout not in pdf.LAYOUTS:
        raise ValidationFailed(f"layout: one of {', '.join(pdf.LAYOUTS)}", code="invalid_layout", field="layout")
    return layout, checked_language(lang)


async def invoice_pdf(session: AsyncSession, settings: Settings, principal: Principal, invoice_id: str,
                      *, layout: str | None = None, lang: str | None = None) -> tuple[str, bytes]:
    """(file name, PDF bytes) of a sealed invoice the caller may read, in ``layout`` (``a4``, ``receipt``)
    and ``lang`` (default: the tenant's language)."""
    layout, lang = pdf_options(layout, lang)
    inv = await get_invoice(session, principal, invoice_id)
    tenant = await TenantRepository(session).get(inv.tenant_id)
    outlet = await OutletRepository(session).get(inv.outlet_id)
    [document] = await render_many(session, settings, [inv])
    row, ack = (await SyncStateRepository(session).views([inv.id])).get(inv.id, (None, None))
    sync = sync_view(row, ack)
    if ack is not None:  # the DGI's elements of a standardised invoice (pdf._drc_mentions)
        sync.update(nim=ack.nim, authority_time=ack.authority_time, authority_qr=ack.qr_code)
    logo = await TenantLogoRepository(session).current()
    # A file name without spaces or slashes (Argentine numbers read "B 00003-00000042", "…/2" once realigned).
    name = inv.fiscal_number.replace(" ", "_").replace("/", "-")
    return (f"{name}-receipt.pdf" if layout == "receipt" else f"{name}.pdf",
            pdf.invoice_pdf(document, seller_view(tenant), outlet_view(outlet), sync,
                            lang=lang or tenant_language(tenant.locale, tenant.jurisdiction), layout=layout,
                            logo=logo.data if logo else None))


def seller_view(tenant: Tenant) -> dict[str, Any]:
    """What a printed document says of the seller."""
    return {"name": tenant.name, "tax_id": tenant.tax_id, "jurisdiction": tenant.jurisdiction,
            "vat_condition": tenant.vat_condition}


def outlet_view(outlet: Outlet) -> dict[str, Any]:
    return {"code": outlet.code, "name": outlet.name, "address": outlet.address, "timezone": outlet.timezone}


async def list_invoices(
    session: AsyncSession, principal: Principal, filters: InvoiceFilters, *, limit: int, starting_after: str | None
) -> tuple[list[Invoice], bool]:
    return await InvoiceRepository(session).search(
        filters, outlets_only=principal.outlet_ids if principal.outlet_id is None else frozenset({principal.outlet_id}),
        limit=limit, starting_after=starting_after
    )



async def original_for_preview(session: AsyncSession, principal: Principal, body: InvoiceCreate,
                               jurisdiction: Any, tenant: Any) -> Any:
    """The original a credit note cites, as sealing would find it (``sealing._original``, less the
    authority's sync state): what a draft's totals need before its seal. None when the caller may not
    see it; the seal itself checks again under the tenant's lock."""
    cited, invoices = body.original, InvoiceRepository(session)
    if cited is None:
        return None
    found = await (invoices.get(cited) if jurisdiction.original_by == "id" else invoices.by_fiscal_number(cited))
    if found is None or not principal.can_use_outlet(found.outlet_id):
        return None
    credited = await invoices.credited_cents(cited, jurisdiction.credit_note_types,
                                             skip_refused=jurisdiction.original_by == "id")
    block = json.loads(found.document).get(jurisdiction.code.lower()) if jurisdiction.original_by == "id" else None
    extra = {**block, "cuit": tenant.tax_id} if block is not None else None
    return OriginalInvoice(fiscal_number=found.fiscal_number, type=found.type, extra=extra,
                           total=Decimal(found.total_cents) / CENTS, credited_total=Decimal(credited) / CENTS)
