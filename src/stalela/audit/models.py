from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from stalela.db.base import Base, UTCDateTime, utcnow
from stalela.tenancy.context import TenantOwned


class ChainedEntry:
    """The columns an entry's hash covers (``audit.service.entry_hash``), shared by both logs."""

    id: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(120), nullable=True)
    details: Mapped[str] = mapped_column(Text, default="{}")
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditEntry(TenantOwned, ChainedEntry, Base):
    """Append-only, hash-chained per tenant: each entry's hash commits to the previous entry's hash."""

    __tablename__ = "audit_log"

    tenant_id: Mapped[str] = mapped_column(String(40), ForeignKey("tenants.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)


class PlatformAuditEntry(ChainedEntry, Base):
    """The operators' log: append-only, one hash chain for the whole platform (no tenant_id). Actors:
    ``operator:token`` | ``operator:<id>`` | ``operator:cli`` | ``anonymous`` (a failed sign-in)."""

    __tablename__ = "platform_audit_log"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
