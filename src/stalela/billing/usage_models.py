"""Usage: the events tenants (and Stalela's own metering) record, their voids, the daily aggregates.

Quantities are integers in the resource's minor units (``quantity × 10^scale``, the scale from the
resource registry): exact on both databases (SQLite has no exact decimal type) and summable in SQL.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from stalela.db.base import Base, UTCDateTime, utcnow
from stalela.tenancy.context import TenantOwned


class UsageEvent(TenantOwned, Base):
    """One usage event, recorded exactly once: ``UNIQUE(tenant_id, event_id)`` in the row's own transaction."""

    __tablename__ = "usage_events"
    __table_args__ = (
        Index("uq_usage_events_tenant_id_event_id", "tenant_id", "event_id", unique=True),
        Index("ix_usage_events_tenant_id_resource_occurred_at", "tenant_id", "resource", "occurred_at"),
        Index("ix_usage_events_tenant_id_received_at", "tenant_id", "received_at"),
    )

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(255))
    resource: Mapped[str] = mapped_column(String(64))
    quantity_units: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    properties: Mapped[str | None] = mapped_column(Text, nullable=True)  # canonical JSON
    # SHA-256 of the canonical request: a replay with another payload is a conflict, not a duplicate.
    payload_hash: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16), default="api")  # api | metering


class UsageVoid(TenantOwned, Base):
    """The compensating record of a voided event: same resource and time, the opposite quantity.

    Append-only: the event itself is never changed, and an event is voided at most once (the key)."""

    __tablename__ = "usage_voids"
    # The aggregation finds the days a void changed by when it was written (``UsageCursor``).
    __table_args__ = (Index("ix_usage_voids_tenant_id_voided_at", "tenant_id", "voided_at"),)

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    resource: Mapped[str] = mapped_column(String(64))
    quantity_units: Mapped[int] = mapped_column(BigInteger)  # negative: −(the event's)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    voided_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    reason: Mapped[str | None] = mapped_column(String(500), nullable=True)


class UsageDaily(TenantOwned, Base):
    """One (tenant, resource, UTC day) aggregate, recomputed from the events alone: a re-run writes the
    same row. ``events_digest`` is the SHA-256 of the sorted ids of the events and voids it covers."""

    __tablename__ = "usage_daily"

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    resource: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    quantity_units: Mapped[int] = mapped_column(BigInteger)
    event_count: Mapped[int] = mapped_column(Integer)
    events_digest: Mapped[str] = mapped_column(String(64))


class UsageCursor(TenantOwned, Base):
    """How far the daily aggregates of a tenant are known to be complete: every event received and every
    void written before ``aggregated_through`` minus the late-commit margin is in ``usage_daily``.

    One small row per tenant is the whole state of the incremental refresh: a run recomputes only the
    days of the events and voids written since (usage_service.LATE_COMMIT_MARGIN explains the margin)."""

    __tablename__ = "usage_cursors"

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    aggregated_through: Mapped[datetime] = mapped_column(UTCDateTime())
