"""Analytics (issue 20): ``analytics_sales`` (additive sums of sealed invoices per business day and per month,
outlet and currency: totals, types, tax groups; kept by the sealing transaction), ``analytics_buyers`` (the
same per month, quarter and year, currency and buyer, over the whole tenant) and ``analytics_authority`` (the authority's outcomes per day of sealing, outlet and outcome, with
a histogram of the time from seal to outcome, kept where the outcome is recorded). Tenant-owned, with RLS.
Both start empty: invoices sealed before this revision are added by ``stalela analytics rebuild``
(docs/analytics.md).

Revision ID: 0034
Revises: 0032
Create Date: 2026-12-10
"""
import sqlalchemy as sa
from alembic import op

from stalela.db import rls
from stalela.db.base import UTCDateTime

revision = "0034"
down_revision = "0033"
branch_labels = None
depends_on = None

BUCKETS = ("le_1s", "le_5s", "le_15s", "le_1m", "le_5m", "le_15m", "le_1h", "le_6h", "le_1d", "over_1d")


def upgrade() -> None:
    op.create_table(
        "analytics_sales",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("period", sa.Date(), nullable=False),
        sa.Column("outlet_id", sa.String(40), nullable=False),
        sa.Column("currency", sa.String(8), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("credit_count", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("credited", sa.BigInteger(), nullable=False),
        sa.Column("base", sa.BigInteger(), nullable=False),
        sa.Column("vat", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "kind", "period", "outlet_id", "currency", "key",
                                name=op.f("pk_analytics_sales")),
    )
    op.create_table(
        "analytics_buyers",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("currency", sa.String(8), nullable=False),
        sa.Column("grain", sa.String(1), nullable=False),
        sa.Column("period", sa.Date(), nullable=False),
        sa.Column("subject_id", sa.String(40), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("credit_count", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("credited", sa.BigInteger(), nullable=False),
        sa.Column("ref", sa.String(40), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "currency", "grain", "period", "subject_id",
                                name=op.f("pk_analytics_buyers")),
    )
    op.create_table(
        "analytics_authority",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("outlet_id", sa.String(40), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("ms_sum", sa.BigInteger(), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in BUCKETS),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "day", "outlet_id", "outcome", name=op.f("pk_analytics_authority")),
    )
    for table in ("analytics_sales", "analytics_buyers", "analytics_authority"):
        rls.protect(table)


def downgrade() -> None:
    for table in ("analytics_authority", "analytics_buyers", "analytics_sales"):
        op.drop_table(table)
