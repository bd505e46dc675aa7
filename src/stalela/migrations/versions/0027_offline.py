"""Offline sealing: devices, delegated credentials, number blocks, the ledger's non-invoice records,
returned batches, per-number receipts and fork proofs (docs/offline.md).

``ledger_events`` and ``fork_proofs`` are fiscal records: append-only like invoices. ``number_blocks``
is updated as a block fills (its state), like a series' counter. Invoices gain ``origin`` and
``merged_at`` (null for online invoices).

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

from stalela.db import rls
from stalela.db.base import UTCDateTime

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def _outlet_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["tenant_id", "outlet_id"], ["outlets.tenant_id", "outlets.id"],
                                   name=f"fk_{table}_tenant_id_outlets")


def upgrade() -> None:
    with op.batch_alter_table("invoices") as batch:
        batch.add_column(sa.Column("origin", sa.String(8), nullable=False, server_default="online"))
        batch.add_column(sa.Column("merged_at", UTCDateTime(), nullable=True))
    op.create_table(
        "ledger_events",
        sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenants.id", name="fk_ledger_events_tenant_id_tenants"),
                  nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("leaf_index", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("outlet_id", sa.String(40), nullable=False),
        sa.Column("series_id", sa.String(40), nullable=False),
        sa.Column("block_id", sa.String(40), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("seal_hash", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_ledger_events")),
    )
    op.create_index("uq_ledger_events_tenant_id_leaf_index", "ledger_events", ["tenant_id", "leaf_index"], unique=True)
    op.create_index("ix_ledger_events_tenant_id_block_id", "ledger_events", ["tenant_id", "block_id"])
    op.create_table(
        "number_blocks",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("outlet_id", sa.String(40), nullable=False),
        sa.Column("series_id", sa.String(40), nullable=False),
        sa.Column("device_id", sa.String(40), nullable=False),
        sa.Column("credential_jti", sa.String(40), nullable=False),
        sa.Column("first", sa.BigInteger(), nullable=False),
        sa.Column("last", sa.BigInteger(), nullable=False),
        sa.Column("anchor_hash", sa.String(64), nullable=False),
        sa.Column("allocated_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_number_blocks")),
        _outlet_fk("number_blocks"),
    )
    op.create_index("uq_number_blocks_tenant_id_series_id_first", "number_blocks", ["tenant_id", "series_id", "first"],
                    unique=True)
    op.create_index("ix_number_blocks_status_expires_at", "number_blocks", ["status", "expires_at"])
    op.create_table(
        "device_nonces",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "nonce", name=op.f("pk_device_nonces")),
    )
    op.create_table(
        "devices",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("outlet_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("public_jwk", sa.Text(), nullable=False),
        sa.Column("thumbprint", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_devices")),
        _outlet_fk("devices"),
    )
    op.create_index("uq_devices_tenant_id_thumbprint", "devices", ["tenant_id", "thumbprint"], unique=True)
    op.create_table(
        "device_credentials",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("jti", sa.String(40), nullable=False),
        sa.Column("device_id", sa.String(40), nullable=False),
        sa.Column("outlet_id", sa.String(40), nullable=False),
        sa.Column("series_id", sa.String(40), nullable=False),
        sa.Column("block_id", sa.String(40), nullable=False),
        sa.Column("status_index", sa.Integer(), nullable=False),
        sa.Column("not_before", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("caps", sa.Text(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("revocation_reason", sa.String(32), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "jti", name=op.f("pk_device_credentials")),
    )
    op.create_index("uq_device_credentials_tenant_id_status_index", "device_credentials",
                    ["tenant_id", "status_index"], unique=True)
    op.create_index("ix_device_credentials_tenant_id_device_id", "device_credentials", ["tenant_id", "device_id"])
    op.create_table(
        "offline_batches",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("credential_jti", sa.String(40), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("invoices", sa.Integer(), nullable=False),
        sa.Column("merged", sa.Integer(), nullable=False),
        sa.Column("refused", sa.Integer(), nullable=False),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_offline_batches")),
    )
    op.create_index("uq_offline_batches_tenant_id_digest", "offline_batches", ["tenant_id", "digest"], unique=True)
    op.create_table(
        "offline_receipts",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("block_id", sa.String(40), nullable=False),
        sa.Column("credential_jti", sa.String(40), nullable=False),
        sa.Column("counter", sa.BigInteger(), nullable=False),
        sa.Column("device_hash", sa.String(64), nullable=False),
        sa.Column("seal", sa.Text(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("code", sa.String(64), nullable=True),
        sa.Column("invoice_id", sa.String(40), nullable=True),
        sa.Column("event_id", sa.String(40), nullable=True),
        sa.Column("batch_id", sa.String(40), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_offline_receipts")),
    )
    op.create_index("uq_offline_receipts_tenant_id_block_id_counter", "offline_receipts",
                    ["tenant_id", "block_id", "counter"], unique=True)
    op.create_table(
        "fork_proofs",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("credential_jti", sa.String(40), nullable=False),
        sa.Column("block_id", sa.String(40), nullable=False),
        sa.Column("counter", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("seal_hash", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_fork_proofs")),
    )
    for table in ("ledger_events", "fork_proofs", "offline_receipts"):
        rls.protect(table, append_only=True)
        rls.forbid_rewrites(table)
    for table in ("number_blocks", "device_nonces", "devices", "device_credentials", "offline_batches"):
        rls.protect(table)


def downgrade() -> None:
    for table in ("fork_proofs", "offline_receipts", "offline_batches", "device_credentials", "devices",
                  "device_nonces", "number_blocks", "ledger_events"):
        rls.allow_rewrites(table)
        op.drop_table(table)
    with op.batch_alter_table("invoices") as batch:
        batch.drop_column("merged_at")
        batch.drop_column("origin")
