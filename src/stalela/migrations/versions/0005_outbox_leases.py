"""Outbox leases: claimed_by, lease_until, done_at.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op

from stalela.db.base import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("lease_until", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("claimed_by", sa.String(64), nullable=True))
        batch.add_column(sa.Column("done_at", UTCDateTime(), nullable=True))
    op.create_index("ix_outbox_topic_status", "outbox", ["topic", "status"])


def downgrade() -> None:
    op.drop_index("ix_outbox_topic_status", "outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("done_at")
        batch.drop_column("claimed_by")
        batch.drop_column("lease_until")
