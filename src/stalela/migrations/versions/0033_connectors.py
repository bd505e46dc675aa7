"""Marketplace connectors (issue 20): ``connections`` (control plane: the store, its encrypted credentials and
poll cursor), ``connector_deliveries`` (webhook deliveries as received, raw bytes) and ``connector_orders``
(what became of each order: the unit of exactly one invoice per order). Tenant-owned, with RLS.

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

from stalela.db import rls
from stalela.db.base import UTCDateTime

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "connections",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("shop", sa.String(255), nullable=False),
        sa.Column("outlet_id", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("api_base_url", sa.String(500), nullable=False),
        sa.Column("credentials", sa.LargeBinary(), nullable=False),
        sa.Column("options", sa.Text(), nullable=False),
        sa.Column("poll_interval_seconds", sa.Integer(), nullable=False),
        sa.Column("poll_cursor", sa.String(40), nullable=True),
        sa.Column("next_poll_at", UTCDateTime(), nullable=True),
        sa.Column("last_sync_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", UTCDateTime(), nullable=True),
        sa.Column("token_expires_at", UTCDateTime(), nullable=True),
        sa.Column("created_by", sa.String(80), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_connections")),
    )
    op.create_index("uq_connections_id", "connections", ["id"], unique=True)
    op.create_index("ix_connections_next_poll_at", "connections", ["status", "next_poll_at"])
    op.create_index("uq_connections_live_shop", "connections", ["tenant_id", "platform", "shop"], unique=True,
                    sqlite_where=sa.text("status != 'deleted'"), postgresql_where=sa.text("status != 'deleted'"))
    op.create_table(
        "connector_deliveries",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("connection_id", sa.String(40), nullable=False),
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column("dedup_key", sa.String(200), nullable=False),
        sa.Column("order_ref", sa.String(64), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(200), nullable=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("processed_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_connector_deliveries")),
    )
    op.create_index("uq_connector_deliveries_dedup", "connector_deliveries",
                    ["tenant_id", "connection_id", "dedup_key"], unique=True)
    op.create_index("ix_connector_deliveries_received", "connector_deliveries",
                    ["tenant_id", "connection_id", "received_at"])
    op.create_table(
        "connector_orders",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("connection_id", sa.String(40), nullable=False),
        sa.Column("order_key", sa.String(64), nullable=False),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.String(40), nullable=False),
        sa.Column("invoice_id", sa.String(40), nullable=True),
        sa.Column("fiscal_number", sa.String(64), nullable=True),
        sa.Column("credit_note_id", sa.String(40), nullable=True),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("difference", sa.String(40), nullable=True),
        sa.Column("platform_total", sa.String(40), nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("write_back", sa.String(16), nullable=False),
        sa.Column("write_back_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "connection_id", "order_key", name=op.f("pk_connector_orders")),
    )
    op.create_index("ix_connector_orders_status", "connector_orders", ["tenant_id", "connection_id", "status"])
    for table in ("connections", "connector_deliveries", "connector_orders"):
        rls.protect(table)


def downgrade() -> None:
    for table in ("connector_orders", "connector_deliveries", "connections"):
        op.drop_table(table)
