"""Retention: tenant policies per data map category, legal holds, purge marks, and the daily run's schedule.

- ``retention_policies``: a tenant's own period per category (fiscal: never below the statutory floor).
- ``retention_holds``: legal holds; released ones stay for the record.
- ``retention_marks``: the soft delete: a row past its rule is marked, and purged by a run after
  ``purge_after`` (the grace period) if it is still past its rule and not held.
- ``retention_schedule``: platform row (no tenant): when the daily run is due, claimed by one process.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-10
"""
import sqlalchemy as sa
from alembic import op

from stalela.db import rls
from stalela.db.base import UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def _tenant_fk(table: str) -> sa.Column:
    return sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenants.id", name=op.f(f"fk_{table}_tenant_id_tenants")),
                     nullable=False)


def upgrade() -> None:
    op.create_table(
        "retention_policies", _tenant_fk("retention_policies"),
        sa.Column("category", sa.String(16), nullable=False),
        sa.Column("years", sa.Integer(), nullable=True),
        sa.Column("days", sa.Integer(), nullable=True),
        sa.Column("grace_days", sa.Integer(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(120), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "category", name=op.f("pk_retention_policies")),
    )
    op.create_table(
        "retention_holds", _tenant_fk("retention_holds"),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("outlet_id", sa.String(40), nullable=True),
        sa.Column("date_from", sa.Date(), nullable=True),
        sa.Column("date_to", sa.Date(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(120), nullable=False),
        sa.Column("released_at", UTCDateTime(), nullable=True),
        sa.Column("released_by", sa.String(120), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_retention_holds")),
    )
    op.create_index("ix_retention_holds_tenant_id_released_at", "retention_holds", ["tenant_id", "released_at"])
    op.create_table(
        "retention_marks", _tenant_fk("retention_marks"),
        sa.Column("purger", sa.String(64), nullable=False),
        sa.Column("row_key", sa.String(300), nullable=False),
        sa.Column("marked_at", UTCDateTime(), nullable=False),
        sa.Column("purge_after", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "purger", "row_key", name=op.f("pk_retention_marks")),
    )
    op.create_index("ix_retention_marks_tenant_id_purger_purge_after", "retention_marks",
                    ["tenant_id", "purger", "purge_after"])
    op.create_table(
        "retention_schedule",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("next_run_at", UTCDateTime(), nullable=False),
        sa.Column("last_started_at", UTCDateTime(), nullable=True),
        sa.Column("last_finished_at", UTCDateTime(), nullable=True),
        sa.Column("last_result", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_retention_schedule")),
    )
    for table in ("retention_policies", "retention_holds", "retention_marks"):
        rls.protect(table)
    rls.grant("retention_schedule", "SELECT, INSERT, UPDATE")


def downgrade() -> None:
    op.drop_table("retention_schedule")
    op.drop_table("retention_marks")
    op.drop_table("retention_holds")
    op.drop_table("retention_policies")
