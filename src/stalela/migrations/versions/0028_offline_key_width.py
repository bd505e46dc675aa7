"""Offline invoices: ``invoices.key_id`` holds the device key's RFC 7638 thumbprint (43 characters) for an
invoice a device sealed (docs/offline.md), longer than the cloud's key ids. Widened to 64.

SQLite does not enforce a VARCHAR's length: only PostgreSQL changes.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("invoices", "key_id", type_=sa.String(64), existing_type=sa.String(40), existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("invoices", "key_id", type_=sa.String(40), existing_type=sa.String(64), existing_nullable=False)
