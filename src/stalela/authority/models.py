from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKeyConstraint, LargeBinary, String, Text
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


class AuthorityTally(TenantOwned, Base):
    """How the authority answered, summed for analytics: one row per local day of sealing (the outlet's
    timezone), outlet and outcome (acknowledged, failed, rejected), added to in the transaction that records
    the outcome (``outcomes.py``). ``ms_sum`` and the ``le_*``/``over_1d`` histogram: the time from the seal
    to the outcome (buckets by upper bound; ``analytics`` reads P50/P95 from them)."""

    __tablename__ = "analytics_authority"

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    outlet_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    ms_sum: Mapped[int] = mapped_column(BigInteger)
    le_1s: Mapped[int] = mapped_column(BigInteger)
    le_5s: Mapped[int] = mapped_column(BigInteger)
    le_15s: Mapped[int] = mapped_column(BigInteger)
    le_1m: Mapped[int] = mapped_column(BigInteger)
    le_5m: Mapped[int] = mapped_column(BigInteger)
    le_15m: Mapped[int] = mapped_column(BigInteger)
    le_1h: Mapped[int] = mapped_column(BigInteger)
    le_6h: Mapped[int] = mapped_column(BigInteger)
    le_1d: Mapped[int] = mapped_column(BigInteger)
    over_1d: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
