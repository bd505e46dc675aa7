from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKeyConstraint, Index, Integer, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from stalela.db.base import Base, UTCDateTime, utcnow
from stalela.tenancy.context import TenantOwned


class AuthorityDevice(TenantOwned, Base):
    """An outlet's DGI e-MCF device registration. The token is stored encrypted (AES-GCM)."""

    __tablename__ = "authority_devices"
    __table_args__ = (ForeignKeyConstraint(["tenant_id", "outlet_id"], ["outlets.tenant_id", "outlets.id"]),)

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    outlet_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    nim: Mapped[str] = mapped_column(String(64))
    base_url: Mapped[str] = mapped_column(String(500))
    token_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | unauthorized
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class InvoiceSync(TenantOwned, Base):
    """Where an invoice stands with the authority. The sealed invoice itself is never touched."""

    __tablename__ = "invoice_sync"
    __table_args__ = (
        Index("ix_invoice_sync_tenant_id_outlet_id_status", "tenant_id", "outlet_id", "status"),
        # Checked requests still pending at the device (migration 0011): the agent settles them before creating.
        Index("ix_invoice_sync_checked", "tenant_id", "outlet_id",
              postgresql_where=text("uid IS NOT NULL AND status = 'pending'"),
              sqlite_where=text("uid IS NOT NULL AND status = 'pending'")),
    )

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    invoice_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    outlet_id: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | acknowledged | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    uid: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the DGI's pending request, if any
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    sealed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Two deliveries of one invoice (invoice.sealed and a resync) must not talk to the authority at
    # once: one would cancel the request the other is confirming. A short lease decides.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AuthorityAck(TenantOwned, Base):
    """The DGI's acknowledgement of a confirmed invoice. Append-only."""

    __tablename__ = "authority_acks"

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    invoice_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    nim: Mapped[str] = mapped_column(String(64))
    uid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    code: Mapped[str] = mapped_column(String(64))  # codeDEFDGI
    counters: Mapped[str | None] = mapped_column(String(64), nullable=True)
    authority_time: Mapped[str | None] = mapped_column(String(64), nullable=True)
    qr_code: Mapped[str | None] = mapped_column(Text, nullable=True)
    raw: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
