"""Authority sync: device registrations, per-invoice sync state, acknowledgements.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op

from stalela.db import rls
from stalela.db.base import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "authority_devices",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("outlet_id", sa.String(40), nullable=False),
        sa.Column("nim", sa.String(64), nullable=False),
        sa.Column("base_url", sa.String(500), nullable=False),
        sa.Column("token_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "outlet_id", name=op.f("pk_authority_devices")),
        sa.ForeignKeyConstraint(["tenant_id", "outlet_id"], ["outlets.tenant_id", "outlets.id"],
                                name=op.f("fk_authority_devices_tenant_id_outlets")),
    )
    op.create_table(
        "invoice_sync",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("invoice_id", sa.String(40), nullable=False),
        sa.Column("outlet_id", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(64), nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("sealed_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "invoice_id", name=op.f("pk_invoice_sync")),
    )
    op.create_index("ix_invoice_sync_tenant_id_outlet_id_status", "invoice_sync", ["tenant_id", "outlet_id", "status"])
    op.create_table(
        "authority_acks",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("invoice_id", sa.String(40), nullable=False),
        sa.Column("nim", sa.String(64), nullable=False),
        sa.Column("uid", sa.String(64), nullable=True),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("counters", sa.String(64), nullable=True),
        sa.Column("authority_time", sa.String(64), nullable=True),
        sa.Column("qr_code", sa.Text(), nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "invoice_id", name=op.f("pk_authority_acks")),
    )
    rls.protect("authority_devices")
    rls.protect("invoice_sync")
    rls.protect("authority_acks", append_only=True)
    rls.forbid_rewrites("authority_acks")


def downgrade() -> None:
    rls.allow_rewrites("authority_acks")
    op.drop_table("authority_acks")
    op.drop_table("invoice_sync")
    op.drop_table("authority_devices")
