"""Privacy: erasure requests (GDPR Art. 17) and their signed receipts.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

from stalela.db import rls
from stalela.db.base import UTCDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "privacy_erasure_requests",
        sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenants.id", name=op.f("fk_privacy_erasure_requests_tenant_id_tenants")),
                  nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("pseudonyms", sa.Text(), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=True),
        sa.Column("requested_by", sa.String(80), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.Column("erased", sa.Text(), nullable=False),
        sa.Column("restricted", sa.Text(), nullable=False),
        sa.Column("receipt", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_privacy_erasure_requests")),
    )
    op.create_index("ix_privacy_erasure_requests_status_due_at", "privacy_erasure_requests", ["status", "due_at"])
    rls.protect("privacy_erasure_requests")


def downgrade() -> None:
    op.drop_index("ix_privacy_erasure_requests_status_due_at", table_name="privacy_erasure_requests")
    op.drop_table("privacy_erasure_requests")
