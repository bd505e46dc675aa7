"""Portability exports (GDPR Art. 15/20): one row per export, its snapshot bounds, file and signature.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

from stalela.db import rls
from stalela.db.base import UTCDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "privacy_exports",
        sa.Column("tenant_id", sa.String(40),
                  sa.ForeignKey("tenants.id", name=op.f("fk_privacy_exports_tenant_id_tenants")), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("subject_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("requested_by", sa.String(120), nullable=False),
        sa.Column("leaf_bound", sa.BigInteger(), nullable=False),
        sa.Column("audit_seq_bound", sa.BigInteger(), nullable=False),
        sa.Column("storage_key", sa.String(300), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("counts", sa.Text(), nullable=True),
        sa.Column("pdfs", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("tagmanifest_sha256", sa.String(64), nullable=True),
        sa.Column("signature", sa.Text(), nullable=True),
        sa.Column("key_id", sa.String(40), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("build_claimed_until", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_privacy_exports")),
    )
    op.create_index("ix_privacy_exports_status_expires_at", "privacy_exports", ["status", "expires_at"])
    rls.protect("privacy_exports")


def downgrade() -> None:
    op.drop_index("ix_privacy_exports_status_expires_at", table_name="privacy_exports")
    op.drop_table("privacy_exports")
