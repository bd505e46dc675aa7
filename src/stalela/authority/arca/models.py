from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from stalela.db.base import Base, UTCDateTime, utcnow
from stalela.tenancy.context import TenantOwned


class ArcaCredential(TenantOwned, Base):
    """A tenant's ARCA certificate and how to reach ARCA. The private key is either stored encrypted
    (``key_encrypted``, kit.secretbox, like DGI device tokens) or lives in the PKCS#11 token
    (``key_label``). ``pending_key_label``: a key generated in the token for a CSR, waiting for the
    certificate ARCA issues for it (the row then has no certificate yet)."""

    __tablename__ = "arca_credentials"

    tenant_id: Mapped[str] = mapped_column(String(40), ForeignKey("tenants.id"), primary_key=True)
    environment: Mapped[str] = mapped_column(String(16))  # homologation | production | custom
    wsaa_url: Mapped[str] = mapped_column(String(500))
    wsfe_url: Mapped[str] = mapped_column(String(500))
    certificate_pem: Mapped[str | None] = mapped_column(Text, nullable=True)
    key_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    key_label: Mapped[str | None] = mapped_column(String(100), nullable=True)
    pending_key_label: Mapped[str | None] = mapped_column(String(100), nullable=True)
    subject: Mapped[str | None] = mapped_column(Text, nullable=True)
    cuit: Mapped[str | None] = mapped_column(String(11), nullable=True)
    not_after: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ArcaTicket(TenantOwned, Base):
    """WSAA's access ticket, cached for every process: WSAA issues one per certificate and service and
    answers coe.alreadyAuthenticated to a second login while it is valid (12 h)."""

    __tablename__ = "arca_tickets"

    tenant_id: Mapped[str] = mapped_column(String(40), ForeignKey("tenants.id"), primary_key=True)
    service: Mapped[str] = mapped_column(String(32), primary_key=True)
    environment: Mapped[str] = mapped_column(String(16), primary_key=True)
    token: Mapped[str] = mapped_column(Text)
    sign: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    generated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cuits: Mapped[str] = mapped_column(Text, default="")  # the sso's relations, space-separated
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
