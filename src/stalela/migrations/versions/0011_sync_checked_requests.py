"""Checked requests per outlet: what the sync agent has pending at a device, found without a scan.

Before each create the agent looks for invoices of the outlet whose checked request (uid stored) is
still pending and unclaimed. Among a backlog of pending invoices those are a handful; a partial index
keeps that lookup small however long the backlog (the (tenant, outlet, status) index would visit
every pending invoice of the outlet).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

WHERE = sa.text("uid IS NOT NULL AND status = 'pending'")


def upgrade() -> None:
    op.create_index("ix_invoice_sync_checked", "invoice_sync", ["tenant_id", "outlet_id"],
                    postgresql_where=WHERE, sqlite_where=WHERE)


def downgrade() -> None:
    op.drop_index("ix_invoice_sync_checked", table_name="invoice_sync")
