"""Plans, their versioned rate cards, and which plan each tenant is on: platform tables (no tenant_id
leads them) managed by the operator, except ``billing_accounts`` which is the tenant's own row."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from stalela.db.base import Base, UTCDateTime, utcnow
from stalela.tenancy.context import TenantOwned


class BillingPlan(Base):
    """A named plan: what a tenant subscribes to. Its prices are its rate cards; its caps are quotas."""

    __tablename__ = "billing_plans"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # a slug chosen by the operator
    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    quotas: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON {resource: cap per period}
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RateCard(Base):
    """One version of a plan's prices, in force from ``effective_from``; immutable once a bill used it."""

    __tablename__ = "billing_rate_cards"
    __table_args__ = (Index("uq_billing_rate_cards_plan_id_effective_from", "plan_id", "effective_from", unique=True),)

    plan_id: Mapped[str] = mapped_column(String(64), ForeignKey("billing_plans.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    effective_from: Mapped[date] = mapped_column(Date)
    prices: Mapped[str] = mapped_column(Text)  # canonical JSON {resource: {unit_price, per, free, tiers}}
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)  # first bill that used it


class BillingAccount(TenantOwned, Base):
    """A tenant's billing settings: its plan and its anomaly detection overrides."""

    __tablename__ = "billing_accounts"

    tenant_id: Mapped[str] = mapped_column(String(40), ForeignKey("tenants.id"), primary_key=True)
    plan_id: Mapped[str] = mapped_column(String(64), ForeignKey("billing_plans.id"))
    anomaly_threshold: Mapped[str | None] = mapped_column(String(16), nullable=True)  # a decimal string
    anomaly_method: Mapped[str | None] = mapped_column(String(8), nullable=True)  # zscore | mad
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
