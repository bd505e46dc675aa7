"""Drafting API: ``invoice_drafts.outlet_id`` (the body's outlet), so that outlet-restricted credentials
(tills' keys, cashiers) list, read and act on only their outlets' drafts. Existing drafts take it from
their body.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-10
"""
import json

import sqlalchemy as sa
from alembic import op

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("invoice_drafts", sa.Column("outlet_id", sa.String(40), nullable=True))
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT tenant_id, id, draft FROM invoice_drafts")).fetchall()
    for tenant_id, draft_id, body in rows:
        outlet = json.loads(body).get("outlet_id")
        if isinstance(outlet, str) and outlet:
            bind.execute(sa.text("UPDATE invoice_drafts SET outlet_id = :o WHERE tenant_id = :t AND id = :i"),
                         {"o": outlet[:40], "t": tenant_id, "i": draft_id})


def downgrade() -> None:
    op.drop_column("invoice_drafts", "outlet_id")
