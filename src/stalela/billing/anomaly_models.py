"""Cost anomalies: one row per (tenant, resource, day) found anomalous, stored once however often the
detection runs."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from stalela.db.base import Base, UTCDateTime, utcnow
from stalela.tenancy.context import TenantOwned


class UsageAnomaly(TenantOwned, Base):
    __tablename__ = "usage_anomalies"
    __table_args__ = (
        Index("uq_usage_anomalies_tenant_id_resource_day", "tenant_id", "resource", "day", unique=True),
        Index("ix_usage_anomalies_tenant_id_status", "tenant_id", "status"),
    )

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    resource: Mapped[str] = mapped_column(String(64))
    day: Mapped[date] = mapped_column(Date)
    # Decimal strings: the day's quantity, the baseline (mean or median), the spread and the score.
    observed: Mapped[str] = mapped_column(String(48))
    baseline: Mapped[str] = mapped_column(String(48))
    spread: Mapped[str] = mapped_column(String(48))
    score: Mapped[str] = mapped_column(String(32))
    method: Mapped[str] = mapped_column(String(8))  # zscore | mad
    threshold: Mapped[str] = mapped_column(String(16))
    impact_eur: Mapped[str] = mapped_column(String(32))  # what the excess over the baseline costs
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | acknowledged | dismissed
    status_by: Mapped[str | None] = mapped_column(String(120), nullable=True)
    status_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
