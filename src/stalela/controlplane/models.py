from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from stalela.db.base import Base, UTCDateTime, utcnow
from stalela.tenancy.context import TenantOwned


class TenantProvisioning(TenantOwned, Base):
    """The provisioning job of a tenant: its state is visible (GET /v1/tenants/{id}) and every step is
    idempotent, so a job interrupted by a crash is resumed from the step it reached."""

    __tablename__ = "tenant_provisioning"
    __table_args__ = (
        Index("uq_tenant_provisioning_idempotency_key", "idempotency_key", unique=True),
        Index("ix_tenant_provisioning_status", "status"),
    )

    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    step: Mapped[str] = mapped_column(String(32))  # controlplane.provisioning.STEPS
    status: Mapped[str] = mapped_column(String(16))  # running | completed | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class TenantMove(TenantOwned, Base):
    """A move of a tenant's data between tiers or servers, and its signed receipt once completed."""

    __tablename__ = "tenant_moves"
    __table_args__ = (Index("ix_tenant_moves_status", "status"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    to_tier: Mapped[str] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(String(500), nullable=True)  # placement; None = control plane
    target: Mapped[str | None] = mapped_column(String(500), nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # running | completed | failed
    step: Mapped[str] = mapped_column(String(32))
    receipt: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON: the signed receipt
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
