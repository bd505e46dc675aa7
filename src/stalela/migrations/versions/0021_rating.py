"""Billing plans, their versioned rate cards, and each tenant's billing account.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06
"""
from datetime import date, datetime, timezone

import sqlalchemy as sa
from alembic import op

from stalela.db import rls
from stalela.db.base import UTCDateTime

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

# The built-in plan every tenant without a billing account is on, and its first prices (EUR; each
# resource's price is for ``per`` units after ``free`` units a month; docs/billing.md lists them):
# API calls 0.10 per 1,000 after 100,000; sealed invoices graduated 0.02 / 0.01 / 0.005 after 100
# (tiers end at 1,000 and 10,000 a month); storage 0.0008 per GB-day after 30 GB-days (1 GB for a
# month); network 0.05 per GB after 10 GB; CPU 0.04 per CPU-hour; memory 0.005 per GB-hour.
# Frozen here as data (not built with the application's code, which may change after this revision).
DEFAULT_PRICES = (
    '{"api_calls":{"free":"100000","per":"1000","unit_price":"0.1"},'
    '"cpu_seconds":{"free":"0","per":"3600","unit_price":"0.04"},'
    '"invoices_sealed":{"free":"100","per":"1","tiers":[{"unit_price":"0.02","up_to":"1000"},'
    '{"unit_price":"0.01","up_to":"10000"},{"unit_price":"0.005","up_to":null}]},'
    '"memory_byte_seconds":{"free":"0","per":"3600000000000","unit_price":"0.005"},'
    '"network_bytes":{"free":"10000000000","per":"1000000000","unit_price":"0.05"},'
    '"storage_bytes":{"free":"30000000000","per":"1000000000","unit_price":"0.0008"}}'
)
SEEDED_AT = datetime(2026, 1, 1, tzinfo=timezone.utc)


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
    # DELETE: the latest version may be withdrawn while no bill used it (billing/rating_service.py).
    rls.grant("billing_rate_cards", "SELECT, INSERT, UPDATE, DELETE")
    rls.protect("billing_accounts")
    plans = sa.table("billing_plans", sa.column("id", sa.String), sa.column("name", sa.String),
                     sa.column("currency", sa.String), sa.column("quotas", sa.Text),
                     sa.column("created_at", UTCDateTime()), sa.column("updated_at", UTCDateTime()))
    cards = sa.table("billing_rate_cards", sa.column("plan_id", sa.String), sa.column("version", sa.Integer),
                     sa.column("effective_from", sa.Date), sa.column("prices", sa.Text),
                     sa.column("created_at", UTCDateTime()), sa.column("used_at", UTCDateTime()))
    op.bulk_insert(plans, [{"id": "default", "name": "Default", "currency": "EUR", "quotas": None,
                            "created_at": SEEDED_AT, "updated_at": SEEDED_AT}])
    op.bulk_insert(cards, [{"plan_id": "default", "version": 1, "effective_from": date(2026, 1, 1),
                            "prices": DEFAULT_PRICES, "created_at": SEEDED_AT, "used_at": None}])


def downgrade() -> None:
    op.drop_table("billing_accounts")
    op.drop_index("uq_billing_rate_cards_plan_id_effective_from", table_name="billing_rate_cards")
    op.drop_table("billing_rate_cards")
    op.drop_table("billing_plans")
