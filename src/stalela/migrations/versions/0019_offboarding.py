"""Tenant offboarding: one resumable state machine per tenant (privacy_offboardings).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

from stalela.db import rls
from stalela.db.base import UTCDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "privacy_offboardings",
        sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenants.id", name=op.f("fk_privacy_offboardings_tenant_id_tenants")),
                  nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(120), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("deprovisioned_at", UTCDateTime(), nullable=True),
        sa.Column("exported_at", UTCDateTime(), nullable=True),
        sa.Column("purged_at", UTCDateTime(), nullable=True),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.Column("export_id", sa.String(40), nullable=True),
        sa.Column("export_sha256", sa.String(64), nullable=True),
        sa.Column("export_url", sa.String(500), nullable=True),
        sa.Column("purged", sa.Text(), nullable=True),
        sa.Column("archive_key_ids", sa.Text(), nullable=True),
        sa.Column("archive_key_destroy_after", sa.Date(), nullable=True),
        sa.Column("receipt", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_privacy_offboardings")),
    )
    op.create_index("uq_privacy_offboardings_tenant_id", "privacy_offboardings", ["tenant_id"], unique=True)
    rls.protect("privacy_offboardings")


def downgrade() -> None:
    op.drop_index("uq_privacy_offboardings_tenant_id", table_name="privacy_offboardings")
    op.drop_table("privacy_offboardings")
