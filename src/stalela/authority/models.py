from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKeyConstraint, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from stalela.db.base import Base, UTCDateTime, utcnow
from stalela.tenancy.context import TenantOwned

# An invoice's sync state and the authority's acknowledgement are in fiscal.invoices.models: the
# invoice API and the verification page show them, and fiscal must not import the agent above it.


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
