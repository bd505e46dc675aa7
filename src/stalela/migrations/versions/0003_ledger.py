"""Ledger: per-tenant Merkle log (head + nodes), signed checkpoints, invoice leaf index.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op

from stalela.db import rls
from stalela.db.base import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "merkle_logs",
        sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenants.id", name=op.f("fk_merkle_logs_tenant_id_tenants")),
                  nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("frontier", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_merkle_logs")),
    )
    op.create_table(
        "merkle_nodes",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("idx", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "level", "idx", name=op.f("pk_merkle_nodes")),
    )
    op.create_table(
        "checkpoints",
        sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenants.id", name=op.f("fk_checkpoints_tenant_id_tenants")),
                  nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.String(64), nullable=False),
        sa.Column("timestamp", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("seal_hash", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_checkpoints")),
    )
    op.create_index("ix_checkpoints_tenant_id_tree_size", "checkpoints", ["tenant_id", "tree_size"])
    with op.batch_alter_table("invoices") as batch:
        batch.add_column(sa.Column("leaf_index", sa.BigInteger(), nullable=True))
    op.create_index("uq_invoices_tenant_id_leaf_index", "invoices", ["tenant_id", "leaf_index"], unique=True)

    rls.protect("merkle_logs")
    for table in ("merkle_nodes", "checkpoints"):
        rls.protect(table, append_only=True)
        rls.forbid_rewrites(table)


def downgrade() -> None:
    op.drop_index("uq_invoices_tenant_id_leaf_index", "invoices")
    with op.batch_alter_table("invoices") as batch:
        batch.drop_column("leaf_index")
    for table in ("merkle_nodes", "checkpoints"):
        rls.allow_rewrites(table)
    op.drop_table("checkpoints")
    op.drop_table("merkle_nodes")
    op.drop_table("merkle_logs")
