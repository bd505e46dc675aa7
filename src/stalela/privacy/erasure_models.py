"""Erasure requests (GDPR Art. 17). A request never stores the subject's identifiers in clear: only
their keyed pseudonyms (``fiscal.subjects.service.pseudonym``), so the request itself is no copy of
what it asks to erase."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from stalela.db.base import Base, UTCDateTime, utcnow
from stalela.tenancy.context import TenantOwned


class ErasureRequest(TenantOwned, Base):
    __tablename__ = "privacy_erasure_requests"
    __table_args__ = (Index("ix_privacy_erasure_requests_status_due_at", "status", "due_at"),)

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # buyer | user
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | completed
    # JSON list of the pseudonyms of the identifiers given (kind, hash); the first names the subject.
    pseudonyms: Mapped[str] = mapped_column(Text)
    user_id: Mapped[str | None] = mapped_column(String(40), nullable=True)  # kind user: resolved at filing
    requested_by: Mapped[str] = mapped_column(String(80))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    erased: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of categories
    restricted: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of {category, legal_basis, retain_until}
    receipt: Mapped[str | None] = mapped_column(Text, nullable=True)  # the signed receipt, JSON
