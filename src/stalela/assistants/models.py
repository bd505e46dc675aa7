"""The tables of drafting: invoice drafts (what a text became, before anyone sealed it), the single-use
approvals a human gives to one exact content, and the tenant's drafting policy."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Index, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from stalela.db.base import Base, UTCDateTime, utcnow
from stalela.tenancy.context import TenantOwned


class InvoiceDraft(TenantOwned, Base):
    """A draft invoice from a natural-language request. Mutable until sealed or discarded; ``content_hash``
    (SHA-256 of the canonical invoice body) is what an approval is bound to."""

    __tablename__ = "invoice_drafts"
    __table_args__ = (Index("ix_invoice_drafts_tenant_id_status", "tenant_id", "status"),)

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    text: Mapped[str] = mapped_column(Text)  # the request as written: personal data (names, amounts)
    locale: Mapped[str | None] = mapped_column(String(8), nullable=True)
    provider: Mapped[str] = mapped_column(String(16))
    parser_version: Mapped[str] = mapped_column(String(32))
    draft: Mapped[str] = mapped_column(Text)  # the invoice body, JSON (the shape of POST /v1/invoices)
    confidence: Mapped[Decimal] = mapped_column(Numeric(6, 4))
    field_confidences: Mapped[str] = mapped_column(Text)  # JSON
    reasons: Mapped[str] = mapped_column(Text)  # JSON list
    questions: Mapped[str] = mapped_column(Text)  # JSON list
    content_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="draft")  # draft | sealed | discarded
    # The body's outlet, kept as a column so that a till's key or a cashier lists only its outlets' drafts.
    outlet_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    invoice_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DraftApproval(TenantOwned, Base):
    """A human's consent to seal one draft at one content hash: single use, short-lived."""

    __tablename__ = "draft_approvals"
    __table_args__ = (Index("ix_draft_approvals_tenant_id_draft_id", "tenant_id", "draft_id"),)

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    draft_id: Mapped[str] = mapped_column(String(40))
    content_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    approved_by: Mapped[str] = mapped_column(String(80))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AssistantSettings(TenantOwned, Base):
    """The tenant's drafting policy. No row: the defaults (``disabled``, 0.85). A table of its own in the
    tenant's database (not columns of ``tenants``, the control plane's row copied to dedicated databases)."""

    __tablename__ = "assistant_settings"

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    seal_policy: Mapped[str] = mapped_column(String(16), default="disabled")  # disabled | elicitation | approval
    confidence_threshold: Mapped[Decimal] = mapped_column(Numeric(6, 4))
    updated_by: Mapped[str] = mapped_column(String(80))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
