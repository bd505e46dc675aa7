"""Usage events, their voids and the daily aggregates (billing).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

from stalela.db import rls
from stalela.db.base import UTCDateTime

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_events",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("resource", sa.String(64), nullable=False),
        sa.Column("quantity_units", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("properties", sa.Text(), nullable=True),
        sa.Column("payload_hash", sa.String(64), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_usage_events")),
    )
    op.create_index("uq_usage_events_tenant_id_event_id", "usage_events", ["tenant_id", "event_id"], unique=True)
    op.create_index("ix_usage_events_tenant_id_resource_occurred_at", "usage_events",
                    ["tenant_id", "resource", "occurred_at"])
    op.create_index("ix_usage_events_tenant_id_received_at", "usage_events", ["tenant_id", "received_at"])
    op.create_table(
        "usage_voids",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("resource", sa.String(64), nullable=False),
        sa.Column("quantity_units", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("voided_at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "event_id", name=op.f("pk_usage_voids")),
    )
    op.create_index("ix_usage_voids_tenant_id_voided_at", "usage_voids", ["tenant_id", "voided_at"])
    op.create_table(
        "usage_daily",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("resource", sa.String(64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("quantity_units", sa.BigInteger(), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("events_digest", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "resource", "day", name=op.f("pk_usage_daily")),
    )
    op.create_table(
        "usage_cursors",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("aggregated_through", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_usage_cursors")),
    )
    # Events and voids are append-only, even for the service's own role; aggregates are recomputed.
    for table in ("usage_events", "usage_voids"):
        rls.protect(table, append_only=True)
        rls.forbid_rewrites(table)
    rls.protect("usage_daily")
    rls.protect("usage_cursors")


def downgrade() -> None:
    for table in ("usage_events", "usage_voids"):
        rls.allow_rewrites(table)
    op.drop_table("usage_cursors")
    op.drop_table("usage_daily")
    op.drop_index("ix_usage_voids_tenant_id_voided_at", table_name="usage_voids")
    op.drop_table("usage_voids")
    op.drop_index("ix_usage_events_tenant_id_received_at", table_name="usage_events")
    op.drop_index("ix_usage_events_tenant_id_resource_occurred_at", table_name="usage_events")
    op.drop_index("uq_usage_events_tenant_id_event_id", table_name="usage_events")
    op.drop_table("usage_events")
