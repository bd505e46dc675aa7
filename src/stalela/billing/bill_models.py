"""Monthly bills: one per (tenant, period), a draft until the grace period ends, then sealed as a
fiscal invoice of the platform's issuing tenant; and the operator's choice of that issuer."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from stalela.db.base import Base, UTCDateTime, utcnow
from stalela.tenancy.context import TenantOwned


class BillingIssuer(Base):
    """The platform's issuing tenant and outlet (one row, id 1): who seals the platform's bills."""

    __tablename__ = "billing_issuer"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Not ``tenant_id``: this platform row belongs to no tenant (row-level security keys on that name).
    issuer_tenant_id: Mapped[str] = mapped_column(String(40))
    issuer_outlet_id: Mapped[str] = mapped_column(String(40))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Bill(TenantOwned, Base):
    """A tenant's bill for one period (``YYYY-MM``). ``tenant_id`` is the billed tenant; the sealed
    invoice (``invoice_id``) belongs to the issuer (``issuer_tenant_id``)."""

    __tablename__ = "billing_bills"
    __table_args__ = (Index("uq_billing_bills_tenant_id_period", "tenant_id", "period", unique=True),
                      Index("ix_billing_bills_status", "status"))

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    period: Mapped[str] = mapped_column(String(7))
    status: Mapped[str] = mapped_column(String(16), default="draft")  # draft | sealed | empty (nothing to bill)
    currency: Mapped[str] = mapped_column(String(3))
    total_cents: Mapped[int] = mapped_column(BigInteger, default=0)  # before the issuer's taxes
    lines: Mapped[str] = mapped_column(Text)  # canonical JSON: the rated lines (bill_service.Line)
    finalize_after: Mapped[datetime] = mapped_column(UTCDateTime())
    issuer_tenant_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    invoice_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    invoice_total_cents: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # taxes included
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sealed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # When the plan's currency is not the issuer's invoice currency: the invoice's currency and the rate
    # (units of it per unit of ``currency``, a decimal string) every line was converted at.
    invoice_currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    exchange_rate: Mapped[str | None] = mapped_column(String(24), nullable=True)
    # Why a draft past its grace is still a draft ("code: detail"), until a run seals it.
    pending_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)


class ExchangeRate(Base):
    """The operator's rate of a period: ``rate`` units of ``invoice_currency`` per unit of ``currency`` (a
    plan's). A platform row; immutable once a sealed bill used it (``used_at``)."""

    __tablename__ = "billing_exchange_rates"

    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    invoice_currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    rate: Mapped[str] = mapped_column(String(24))  # a decimal string, > 0, at most 6 decimals
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)  # first sealed bill that used it
