"""The tables of the marketplace connectors.

``connections`` is a control-plane table (like API keys): a platform's webhook names only the connection,
so the tenant is found from it before any tenant is known, whatever the tenant's tier. Deliveries and
orders are the tenant's data: they live where its placement says, next to the invoices they become.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from stalela.db.base import Base, UTCDateTime, utcnow
from stalela.tenancy.context import TenantOwned


class Connection(TenantOwned, Base):
    """A store on a marketplace, the outlet its orders are sealed at, and how to reach its API."""

    __tablename__ = "connections"
    __table_args__ = (
        Index("uq_connections_id", "id", unique=True),
        Index("ix_connections_next_poll_at", "status", "next_poll_at"),
        # One live connection per store and tenant (a deleted one may be connected again).
        Index("uq_connections_live_shop", "tenant_id", "platform", "shop", unique=True,
              sqlite_where=text("status != 'deleted'"), postgresql_where=text("status != 'deleted'")),
    )

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))  # shopify | mercadolibre | tiendanube | woocommerce
    shop: Mapped[str] = mapped_column(String(255))  # shop domain, ML seller id, Tienda Nube store id, Woo site
    outlet_id: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | paused | deleted
    api_base_url: Mapped[str] = mapped_column(String(500))
    # JSON of the platform's secrets (tokens, client secret, webhook secret), AES-GCM under the master key,
    # bound to the connection's id: never shown again once saved.
    credentials: Mapped[bytes] = mapped_column(LargeBinary)
    options: Mapped[str] = mapped_column(Text, default="{}")  # JSON: mapping options, Woo webhook id
    poll_interval_seconds: Mapped[int] = mapped_column(Integer, default=600)
    poll_cursor: Mapped[str | None] = mapped_column(String(40), nullable=True)  # RFC 3339 UTC: updated since
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ConnectorDelivery(TenantOwned, Base):
    """One webhook delivery as it arrived: raw bytes, kept so that processing (and an audit of it) works
    from what the platform sent, never from a re-serialisation. Exact duplicates (same dedup key) collapse."""

    __tablename__ = "connector_deliveries"
    __table_args__ = (
        Index("uq_connector_deliveries_dedup", "tenant_id", "connection_id", "dedup_key", unique=True),
        Index("ix_connector_deliveries_received", "tenant_id", "connection_id", "received_at"),
    )

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    connection_id: Mapped[str] = mapped_column(String(40))
    topic: Mapped[str] = mapped_column(String(64))
    dedup_key: Mapped[str] = mapped_column(String(200))
    order_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    body: Mapped[bytes] = mapped_column(LargeBinary)  # personal data (buyer names): data map, retention
    headers: Mapped[str] = mapped_column(Text)  # JSON: the platform's headers we read
    via: Mapped[str] = mapped_column(String(16))  # webhook | spool (stored after a database outage)
    status: Mapped[str] = mapped_column(String(16), default="received")  # received | processed | ignored
    outcome: Mapped[str | None] = mapped_column(String(200), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ConnectorOrder(TenantOwned, Base):
    """What became of one order: the unit of "exactly one invoice per order". Its row lock serialises every
    delivery, poll and retry of the order; its invoice is sealed under an Idempotency-Key made of the
    connection and the order key, so even a lost row update cannot seal a second one."""

    __tablename__ = "connector_orders"
    __table_args__ = (Index("ix_connector_orders_status", "tenant_id", "connection_id", "status"),)

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    connection_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_key: Mapped[str] = mapped_column(String(64), primary_key=True)  # order id; ML: the pack id if any
    order_id: Mapped[str] = mapped_column(String(64))
    # pending (not paid yet) | invoiced | parked | skipped (refunded or cancelled before any invoice)
    # | credited (refunded after its invoice: a credit note) | dismissed (a person took it over)
    status: Mapped[str] = mapped_column(String(16))
    version: Mapped[str] = mapped_column(String(40))  # the platform's updated_at, RFC 3339 UTC
    invoice_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    fiscal_number: Mapped[str | None] = mapped_column(String(64), nullable=True)
    credit_note_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(64), nullable=True)  # parked/skipped: a stable code
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    difference: Mapped[str | None] = mapped_column(String(40), nullable=True)  # parked on totals: ours - theirs
    platform_total: Mapped[str | None] = mapped_column(String(40), nullable=True)
    currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    write_back: Mapped[str] = mapped_column(String(16), default="none")  # none | pending | done | failed
    write_back_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
