"""Cost anomalies, stored once per (tenant, resource, day).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

from stalela.db import rls
from stalela.db.base import UTCDateTime

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_anomalies",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("resource", sa.String(64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("observed", sa.String(48), nullable=False),
        sa.Column("baseline", sa.String(48), nullable=False),
        sa.Column("spread", sa.String(48), nullable=False),
        sa.Column("score", sa.String(32), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("threshold", sa.String(16), nullable=False),
        sa.Column("impact_eur", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_by", sa.String(120), nullable=True),
        sa.Column("status_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_usage_anomalies")),
    )
    op.create_index("uq_usage_anomalies_tenant_id_resource_day", "usage_anomalies", ["tenant_id", "resource", "day"],
                    unique=True)
    op.create_index("ix_usage_anomalies_tenant_id_status", "usage_anomalies", ["tenant_id", "status"])
    rls.protect("usage_anomalies")


def downgrade() -> None:
    op.drop_index("ix_usage_anomalies_tenant_id_status", table_name="usage_anomalies")
    op.drop_index("uq_usage_anomalies_tenant_id_resource_day", table_name="usage_anomalies")
    op.drop_table("usage_anomalies")
