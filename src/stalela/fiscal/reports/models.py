from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKeyConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from stalela.db.base import Base, UTCDateTime, utcnow
from stalela.tenancy.context import TenantOwned


class ZReport(TenantOwned, Base):
    """A day close: sealed like an invoice, chained per outlet, numbered without gaps. Append-only."""

    __tablename__ = "z_reports"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "outlet_id"], ["outlets.tenant_id", "outlets.id"]),
        # At most one Z per outlet and day, whoever races to close it (API, scheduler, CLI).
        Index("uq_z_reports_tenant_id_outlet_id_business_day", "tenant_id", "outlet_id", "business_day",
              unique=True),
        Index("uq_z_reports_tenant_id_outlet_id_z_counter", "tenant_id", "outlet_id", "z_counter", unique=True),
        # The public verification page finds a Z by id alone.
        Index("uq_z_reports_id", "id", unique=True),
    )

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    outlet_id: Mapped[str] = mapped_column(String(40))
    business_day: Mapped[date] = mapped_column(Date)
    z_counter: Mapped[int] = mapped_column(BigInteger)
    number: Mapped[str] = mapped_column(String(64))
    # The outlet's series counter at the close: the day's invoices end here (0: none yet).
    counter_to: Mapped[int] = mapped_column(BigInteger)
    invoice_count: Mapped[int] = mapped_column(BigInteger)
    total_cents: Mapped[int] = mapped_column(BigInteger)
    closed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_by: Mapped[str] = mapped_column(String(16))  # api | scheduler | cli
    checkpoint_id: Mapped[str] = mapped_column(String(40))
    key_id: Mapped[str] = mapped_column(String(40))
    seal_hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
    payload: Mapped[str] = mapped_column(Text)  # the signed payload, canonical JSON (RFC 8785)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
