"""Offline sealing: ``block_returns`` keeps each device-signed ``block_return`` statement beside the
``numbers_voided`` record it caused (which carries only its hash), so an invoice the device later signs at a
returned number is proven equivocation: both statements in one fork proof (docs/offline.md). Append-only.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-08
"""
import sqlalchemy as sa
from alembic import op

from stalela.db import rls
from stalela.db.base import UTCDateTime

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "block_returns",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("block_id", sa.String(40), nullable=False),
        sa.Column("credential_jti", sa.String(40), nullable=False),
        sa.Column("statement_hash", sa.String(64), nullable=False),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.Column("first", sa.BigInteger(), nullable=False),
        sa.Column("last", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(40), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_block_returns")),
    )
    op.create_index("uq_block_returns_tenant_id_block_id_statement_hash", "block_returns",
                    ["tenant_id", "block_id", "statement_hash"], unique=True)
    rls.protect("block_returns", append_only=True)
    rls.forbid_rewrites("block_returns")


def downgrade() -> None:
    rls.allow_rewrites("block_returns")
    op.drop_table("block_returns")
