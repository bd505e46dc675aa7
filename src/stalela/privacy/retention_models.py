from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from stalela.db.base import Base, UTCDateTime, utcnow
from stalela.tenancy.context import TenantOwned


class RetentionPolicy(TenantOwned, Base):
    """A tenant's own retention for one category of the data map; no row: the defaults (and the law)."""

    __tablename__ = "retention_policies"

    tenant_id: Mapped[str] = mapped_column(String(40), ForeignKey("tenants.id"), primary_key=True)
    category: Mapped[str] = mapped_column(String(16), primary_key=True)
    years: Mapped[int | None] = mapped_column(Integer, nullable=True)
    days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    grace_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(120))


class LegalHold(TenantOwned, Base):
    """Suspends purging (and the shredding of fiscal records' personal parts) for what it covers until
    released. Released holds stay, for the record."""

    __tablename__ = "retention_holds"
    __table_args__ = (Index("ix_retention_holds_tenant_id_released_at", "tenant_id", "released_at"),)

    tenant_id: Mapped[str] = mapped_column(String(40), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    reason: Mapped[str] = mapped_column(String(500))
    # Scope: nothing set = the whole tenant; an outlet, a range of UTC dates (inclusive), or both.
    outlet_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    date_from: Mapped[date | None] = mapped_column(Date, nullable=True)
    date_to: Mapped[date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(120))
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    released_by: Mapped[str | None] = mapped_column(String(120), nullable=True)


class RetentionMark(TenantOwned, Base):
    """A purge candidate: the row ``row_key`` of the purger's table goes at the first run after
    ``purge_after`` if it is still a candidate then (past its rule, not held). The soft delete."""

    __tablename__ = "retention_marks"
    __table_args__ = (Index("ix_retention_marks_tenant_id_purger_purge_after", "tenant_id", "purger", "purge_after"),)

    tenant_id: Mapped[str] = mapped_column(String(40), ForeignKey("tenants.id"), primary_key=True)
    purger: Mapped[str] = mapped_column(String(64), primary_key=True)
    row_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    marked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    purge_after: Mapped[datetime] = mapped_column(UTCDateTime())


class RetentionSchedule(Base):
    """Platform row: when the daily run is due. Claimed with one conditional UPDATE, so of several
    worker processes exactly one starts each run."""

    __tablename__ = "retention_schedule"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    next_run_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_result: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON totals, no ids
