"""An offboarding: one row per tenant, its state and what each step did (the checkpoint a resumed run reads)."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from stalela.db.base import Base, UTCDateTime, utcnow
from stalela.tenancy.context import TenantOwned


class Offboarding(TenantOwned, Base):
    """active → deprovisioning → exported → purged → deleted; each step commits its state with its results.

    A tenant is offboarded once (unique on ``tenant_id``), so a second request finds this row instead
    of starting a second machine."""

    __tablename__ = "privacy_offboardings"
    __table_args__ = (Index("uq_privacy_offboardings_tenant_id", "tenant_id", unique=True),)

    tenant_id: Mapped[str] = mapped_column(String(40), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    mode: Mapped[str] = mapped_column(String(16))  # return | delete
    state: Mapped[str] = mapped_column(String(16), default="active")
    requested_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    deprovisioned_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    exported_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The hand-over export: requested with deprovisioning, its digest and link kept once it is ready.
    export_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    export_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    export_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    purged: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON {table: rows}
    archive_key_ids: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON list of tenant key ids
    archive_key_destroy_after: Mapped[date | None] = mapped_column(Date, nullable=True)
    receipt: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON: the signed receipt, written once
