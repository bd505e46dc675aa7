"""Drafting API (issue 19): ``invoice_drafts`` (a natural-language request made a draft invoice),
``draft_approvals`` (a human's single-use consent to seal one draft at one content hash) and
``assistant_settings`` (the tenant's seal policy and confidence threshold). Tenant-owned, with RLS.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-09
"""
import sqlalchemy as sa
from alembic import op

from stalela.db import rls
from stalela.db.base import UTCDateTime

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invoice_drafts",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("locale", sa.String(8), nullable=True),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("parser_version", sa.String(32), nullable=False),
        sa.Column("draft", sa.Text(), nullable=False),
        sa.Column("confidence", sa.Numeric(6, 4), nullable=False),
        sa.Column("field_confidences", sa.Text(), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("questions", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("invoice_id", sa.String(40), nullable=True),
        sa.Column("created_by", sa.String(80), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_invoice_drafts")),
    )
    op.create_index("ix_invoice_drafts_tenant_id_status", "invoice_drafts", ["tenant_id", "status"])
    op.create_table(
        "draft_approvals",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("draft_id", sa.String(40), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("approved_by", sa.String(80), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_draft_approvals")),
    )
    op.create_index("ix_draft_approvals_tenant_id_draft_id", "draft_approvals", ["tenant_id", "draft_id"])
    op.create_table(
        "assistant_settings",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("seal_policy", sa.String(16), nullable=False),
        sa.Column("confidence_threshold", sa.Numeric(6, 4), nullable=False),
        sa.Column("updated_by", sa.String(80), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_assistant_settings")),
    )
    for table in ("invoice_drafts", "draft_approvals", "assistant_settings"):
        rls.protect(table)


def downgrade() -> None:
    for table in ("assistant_settings", "draft_approvals", "invoice_drafts"):
        op.drop_table(table)
