"""Monthly bills and the platform's billing issuer.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

from stalela.db import rls
from stalela.db.base import UTCDateTime

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "billing_issuer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issuer_tenant_id", sa.String(40), nullable=False),
        sa.Column("issuer_outlet_id", sa.String(40), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_issuer")),
    )
    op.create_table(
        "billing_bills",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("total_cents", sa.BigInteger(), nullable=False),
        sa.Column("lines", sa.Text(), nullable=False),
        sa.Column("finalize_after", UTCDateTime(), nullable=False),
        sa.Column("issuer_tenant_id", sa.String(40), nullable=True),
        sa.Column("invoice_id", sa.String(40), nullable=True),
        sa.Column("invoice_total_cents", sa.BigInteger(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("sealed_at", UTCDateTime(), nullable=True),
        sa.Column("invoice_currency", sa.String(3), nullable=True),
        sa.Column("exchange_rate", sa.String(24), nullable=True),
        sa.Column("pending_reason", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_billing_bills")),
    )
    op.create_index("uq_billing_bills_tenant_id_period", "billing_bills", ["tenant_id", "period"], unique=True)
    op.create_index("ix_billing_bills_status", "billing_bills", ["status"])
    op.create_table(
        "billing_exchange_rates",
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("invoice_currency", sa.String(3), nullable=False),
        sa.Column("rate", sa.String(24), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("period", "currency", "invoice_currency", name=op.f("pk_billing_exchange_rates")),
    )
    rls.grant("billing_issuer", "SELECT, INSERT, UPDATE")
    rls.grant("billing_exchange_rates", "SELECT, INSERT, UPDATE")
    rls.protect("billing_bills")


def downgrade() -> None:
    op.drop_index("ix_billing_bills_status", table_name="billing_bills")
    op.drop_index("uq_billing_bills_tenant_id_period", table_name="billing_bills")
    op.drop_table("billing_bills")
    op.drop_table("billing_exchange_rates")
    op.drop_table("billing_issuer")
