"""The merchant's experience: languages (a tenant's default, a user's and an operator's preference)
and the tenant's logo printed on its documents.

A null language means "not chosen": a user falls back to the tenant's, a tenant to its jurisdiction's
(French for the DRC, Spanish for Argentina). The logo is tenant data (data plane, moved with the
tenant), one row per tenant, replaced on upload; it is not fiscal (a sealed invoice's hash does not
cover it), so replacing it rewrites no history.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

from stalela.db import rls
from stalela.db.base import UTCDateTime

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("tenants", "users", "operator_users"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("locale", sa.String(8), nullable=True))
    op.create_table(
        "tenant_logos",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("content_type", sa.String(40), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_tenant_logos")),
    )
    rls.protect("tenant_logos")


def downgrade() -> None:
    op.drop_table("tenant_logos")
    for table in ("operator_users", "users", "tenants"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("locale")
