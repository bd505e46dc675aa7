from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, LargeBinary, String, Text, true
from sqlalchemy.orm import Mapped, mapped_column

from stalela.db.base import Base, UTCDateTime, utcnow
from stalela.tenancy.context import TenantOwned


class PrivacyExport(TenantOwned, Base):
    """A portability export (GDPR Art. 15/20): requested, built in the background, downloaded by link.

    ``status``: pending -> ready -> expired, or revoked (from pending or ready), or failed. The archive
    is a snapshot as of the request: invoices below ``leaf_bound`` (the tenant's log size then) and
    audit entries below ``audit_seq_bound`` (the request's own entry), so a rebuild of the same export
    holds the same data. ``signature`` is kept with the digest of the tag manifest it signs, so a
    rebuild reuses it and yields the same bytes (an ECDSA signature differs each time it is made).
    """

    __tablename__ = "privacy_exports"
    __table_args__ = (
        # The sweeper looks for ready exports past their expiry, across tenants.
        Index("ix_privacy_exports_status_expires_at", "status", "expires_at"),
    )

    tenant_id: Mapped[str] = mapped_column(String(40), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))  # tenant | subject
    status: Mapped[str] = mapped_column(String(16), default="pending")
    # The subject's identifiers (e-mail, tax id, reference), AES-GCM under the master key; dropped once
    # the export is built, revoked or failed: they are needed only to find the subject's data.
    subject_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    requested_by: Mapped[str] = mapped_column(String(120))
    leaf_bound: Mapped[int] = mapped_column(BigInteger, default=0)
    audit_seq_bound: Mapped[int] = mapped_column(BigInteger, default=0)
    storage_key: Mapped[str | None] = mapped_column(String(300), nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    counts: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON {entity: records}
    pdfs: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    tagmanifest_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    signature: Mapped[str | None] = mapped_column(Text, nullable=True)  # the detached JWS
    key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # A build holds the export until then (renewed while it runs): a second worker that got the same event
    # (its outbox lease ran out under a long build) waits instead of building it twice at once.
    build_claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)  # revoked, expired or failed
