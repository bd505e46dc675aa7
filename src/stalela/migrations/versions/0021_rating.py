"""Billing plans, their versioned rate cards, and each tenant's billing account.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

from stalela.db import rls
from stalela.db.base import UTCDateTime

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "billing_plans",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("quotas", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_plans")),
    )
    op.create_table(
        "billing_rate_cards",
        sa.Column("plan_id", sa.String(64), sa.ForeignKey("billing_plans.id", name=op.f("fk_billing_rate_cards_plan_id_billing_plans")),
                  nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("prices", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("plan_id", "version", name=op.f("pk_billing_rate_cards")),
    )
    op.create_index("uq_billing_rate_cards_plan_id_effective_from", "billing_rate_cards", ["plan_id", "effective_from"],
                    unique=True)
    op.create_table(
        "billing_accounts",
        sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenants.id", name=op.f("fk_billing_accounts_tenant_id_tenants")),
                  nullable=False),
        sa.Column("plan_id", sa.String(64), sa.ForeignKey("billing_plans.id", name=op.f("fk_billing_accounts_plan_id_billing_plans")),
                  nullable=False),
        sa.Column("anomaly_threshold", sa.String(16), nullable=True),
        sa.Column("anomaly_method", sa.String(8), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_billing_accounts")),
    )
    rls.grant("billing_plans", "SELECT, INSERT, UPDATE")
    rls.grant("billing_rate_cards", "SELECT, INSERT, UPDATE")
    rls.protect("billing_accounts")


def downgrade() -> None:
    op.drop_table("billing_accounts")
    op.drop_index("uq_billing_rate_cards_plan_id_effective_from", table_name="billing_rate_cards")
    op.drop_table("billing_rate_cards")
    op.drop_table("billing_plans")
