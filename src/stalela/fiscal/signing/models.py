from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from stalela.db.base import Base, UTCDateTime, utcnow
from stalela.tenancy.context import TenantOwned


class SigningKey(TenantOwned, Base):
    """A tenant's ES256 key. Rows are never deleted: retired keys verify old seals forever."""

    __tablename__ = "signing_keys"
    __table_args__ = (
        # Public key lookups (GET /v1/keys/{id}) arrive without a tenant.
        Index("uq_signing_keys_id", "id", unique=True),
        Index("ix_signing_keys_tenant_id_status", "tenant_id", "status"),
    )

    tenant_id: Mapped[str] = mapped_column(String(40), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    backend: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[str] = mapped_column(Text)
    private_ref: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | retired
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    not_after: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
