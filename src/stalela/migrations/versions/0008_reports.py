"""Reports: per-outlet business-day figures (a rebuildable cache) and sealed Z reports (append-only).

Revision ID: 0008
Revises: 0006
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op

from stalela.db import rls
from stalela.db.base import UTCDateTime

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_day_figures",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("outlet_id", sa.String(40), nullable=False),
        sa.Column("business_day", sa.Date(), nullable=False),
        sa.Column("figures", sa.Text(), nullable=False),
        sa.Column("z_report_id", sa.String(40), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "outlet_id", "business_day", name=op.f("pk_report_day_figures")),
        sa.ForeignKeyConstraint(["tenant_id", "outlet_id"], ["outlets.tenant_id", "outlets.id"],
                                name=op.f("fk_report_day_figures_tenant_id_outlets")),
    )
    op.create_index("ix_report_day_figures_z_report_id_business_day", "report_day_figures",
                    ["z_report_id", "business_day"])
    op.create_table(
        "z_reports",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("outlet_id", sa.String(40), nullable=False),
        sa.Column("business_day", sa.Date(), nullable=False),
        sa.Column("z_counter", sa.BigInteger(), nullable=False),
        sa.Column("number", sa.String(64), nullable=False),
        sa.Column("counter_to", sa.BigInteger(), nullable=False),
        sa.Column("invoice_count", sa.BigInteger(), nullable=False),
        sa.Column("total_cents", sa.BigInteger(), nullable=False),
        sa.Column("closed_at", UTCDateTime(), nullable=False),
        sa.Column("closed_by", sa.String(16), nullable=False),
        sa.Column("checkpoint_id", sa.String(40), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("seal_hash", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_z_reports")),
        sa.ForeignKeyConstraint(["tenant_id", "outlet_id"], ["outlets.tenant_id", "outlets.id"],
                                name=op.f("fk_z_reports_tenant_id_outlets")),
    )
    op.create_index("uq_z_reports_tenant_id_outlet_id_business_day", "z_reports",
                    ["tenant_id", "outlet_id", "business_day"], unique=True)
    op.create_index("uq_z_reports_tenant_id_outlet_id_z_counter", "z_reports",
                    ["tenant_id", "outlet_id", "z_counter"], unique=True)
    op.create_index("uq_z_reports_id", "z_reports", ["id"], unique=True)

    # The figures are a cache of sealed facts, rebuilt in place: ordinary grants.
    rls.protect("report_day_figures")
    rls.protect("z_reports", append_only=True)
    rls.forbid_rewrites("z_reports")


def downgrade() -> None:
    rls.allow_rewrites("z_reports")
    op.drop_table("z_reports")
    op.drop_index("ix_report_day_figures_z_report_id_business_day", "report_day_figures")
    op.drop_table("report_day_figures")
