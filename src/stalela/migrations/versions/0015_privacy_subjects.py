"""Privacy: per-tenant wrapping keys, per-subject data keys, their pseudonymous index and tombstones,
and the encrypted buyer of a sealed invoice (seal format v2).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

from stalela.db import rls
from stalela.db.base import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def _tenant_fk(table: str) -> sa.Column:
    return sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenants.id", name=op.f(f"fk_{table}_tenant_id_tenants")),
                     nullable=False)


def upgrade() -> None:
    op.create_table(
        "privacy_tenant_keys", _tenant_fk("privacy_tenant_keys"),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("backend", sa.String(16), nullable=False),
        sa.Column("material", sa.LargeBinary(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("destroy_after", sa.Date(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("destroyed_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_privacy_tenant_keys")),
    )
    op.create_table(
        "privacy_subjects", _tenant_fk("privacy_subjects"),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("tenant_key_id", sa.String(40), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("retain_until", sa.Date(), nullable=True),
        sa.Column("merged_into", sa.String(40), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("restricted_at", UTCDateTime(), nullable=True),
        sa.Column("shredded_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_privacy_subjects")),
    )
    op.create_index("ix_privacy_subjects_status_retain_until", "privacy_subjects", ["status", "retain_until"])
    op.create_table(
        "privacy_subject_ids", _tenant_fk("privacy_subject_ids"),
        sa.Column("id_hash", sa.String(64), nullable=False),
        sa.Column("subject_id", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id_hash", name=op.f("pk_privacy_subject_ids")),
    )
    op.create_index("ix_privacy_subject_ids_tenant_id_subject_id", "privacy_subject_ids", ["tenant_id", "subject_id"])
    op.create_table(
        "privacy_erased_ids", _tenant_fk("privacy_erased_ids"),
        sa.Column("id_hash", sa.String(64), nullable=False),
        sa.Column("erased_at", UTCDateTime(), nullable=False),
        sa.Column("released_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "id_hash", name=op.f("pk_privacy_erased_ids")),
    )
    # Sealed invoices stay append-only: the columns are written once, at sealing.
    op.add_column("invoices", sa.Column("buyer_subject", sa.String(40), nullable=True))
    op.add_column("invoices", sa.Column("buyer_sealed", sa.LargeBinary(), nullable=True))
    op.create_index("ix_invoices_tenant_id_buyer_subject", "invoices", ["tenant_id", "buyer_subject"])
    for table in ("privacy_tenant_keys", "privacy_subjects", "privacy_subject_ids", "privacy_erased_ids"):
        rls.protect(table)


def downgrade() -> None:
    op.drop_index("ix_invoices_tenant_id_buyer_subject", table_name="invoices")
    with op.batch_alter_table("invoices") as batch:
        batch.drop_column("buyer_sealed")
        batch.drop_column("buyer_subject")
    for table in ("privacy_erased_ids", "privacy_subject_ids", "privacy_subjects", "privacy_tenant_keys"):
        op.drop_table(table)
