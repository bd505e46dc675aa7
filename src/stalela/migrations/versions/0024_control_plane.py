"""The control plane: tenants' tiers and placement, per-tenant limits, provisioning jobs and moves.

API keys move to the control plane (they are found there before the tenant's database is known), so
their foreign key to ``outlets`` goes: a dedicated tenant's outlets live in its own database. The
service checks the outlet instead (accounts.service).

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

from stalela.db import rls
from stalela.db.base import UTCDateTime

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("tier", sa.String(16), nullable=False, server_default="shared"))
        batch.add_column(sa.Column("placement", sa.String(500), nullable=True))
        batch.add_column(sa.Column("rate_limit_per_second", sa.Numeric(10, 3), nullable=True))
        batch.add_column(sa.Column("rate_limit_burst", sa.Integer(), nullable=True))
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_constraint("fk_api_keys_tenant_id_outlets", type_="foreignkey")
    op.create_table(
        "tenant_provisioning",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("step", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_tenant_provisioning")),
    )
    op.create_index("uq_tenant_provisioning_idempotency_key", "tenant_provisioning", ["idempotency_key"],
                    unique=True)
    op.create_index("ix_tenant_provisioning_status", "tenant_provisioning", ["status"])
    op.create_table(
        "tenant_moves",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("to_tier", sa.String(16), nullable=False),
        sa.Column("source", sa.String(500), nullable=True),
        sa.Column("target", sa.String(500), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("step", sa.String(32), nullable=False),
        sa.Column("receipt", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.Column("purged_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_tenant_moves")),
    )
    op.create_index("ix_tenant_moves_status", "tenant_moves", ["status"])
    rls.protect("tenant_provisioning")
    rls.protect("tenant_moves")
    if op.get_bind().dialect.name == "postgresql":
        # The one statement every tenant transaction starts with (tenancy.context.bind_tenant) reads the
        # tenant's placement through this function. A write first takes the tenant's shared lock, which a
        # move's switch takes exclusively (controlplane.moves): writes wait while a tenant switches
        # databases, then read the new placement. PL/pgSQL, so the read after the lock takes a fresh
        # snapshot (a SQL function could be inlined into the caller's); SECURITY DEFINER, because the
        # caller's row-level security would hide the row when the tenant is not bound yet.
        op.execute("""CREATE OR REPLACE FUNCTION stalela_route(t text, for_write boolean) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF for_write THEN
    PERFORM pg_advisory_xact_lock_shared(hashtextextended('stalela.tenant:' || t, 0));
  END IF;
  RETURN (SELECT placement FROM tenants WHERE id = t);
END $$""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS stalela_route(text, boolean)")
    op.drop_table("tenant_moves")
    op.drop_table("tenant_provisioning")
    with op.batch_alter_table("api_keys") as batch:
        batch.create_foreign_key("fk_api_keys_tenant_id_outlets", "outlets", ["tenant_id", "outlet_id"],
                                 ["tenant_id", "id"])
    with op.batch_alter_table("tenants") as batch:
        for name in ("rate_limit_burst", "rate_limit_per_second", "placement", "tier"):
            batch.drop_column(name)
