"""ARCA (Argentina): each tenant's certificate and key (or HSM key label), and the WSAA ticket cache.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

from stalela.db import rls
from stalela.db.base import UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "arca_credentials",
        sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenants.id", name=op.f("fk_arca_credentials_tenant_id_tenants")),
                  nullable=False),
        sa.Column("environment", sa.String(16), nullable=False),
        sa.Column("wsaa_url", sa.String(500), nullable=False),
        sa.Column("wsfe_url", sa.String(500), nullable=False),
        sa.Column("certificate_pem", sa.Text(), nullable=True),
        sa.Column("key_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("key_label", sa.String(100), nullable=True),
        sa.Column("pending_key_label", sa.String(100), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("cuit", sa.String(11), nullable=True),
        sa.Column("not_after", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_arca_credentials")),
    )
    op.create_table(
        "arca_tickets",
        sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenants.id", name=op.f("fk_arca_tickets_tenant_id_tenants")),
                  nullable=False),
        sa.Column("service", sa.String(32), nullable=False),
        sa.Column("environment", sa.String(16), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("sign", sa.Text(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("generated_at", UTCDateTime(), nullable=True),
        sa.Column("cuits", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "service", "environment", name=op.f("pk_arca_tickets")),
    )
    rls.protect("arca_credentials")
    rls.protect("arca_tickets")


def downgrade() -> None:
    op.drop_table("arca_tickets")
    op.drop_table("arca_credentials")
