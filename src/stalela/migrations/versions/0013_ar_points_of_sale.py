"""Argentina: the issuer's IVA condition, outlets as numbered points of sale, series that start aligned.

- ``tenants.vat_condition``: an Argentine issuer's IVA condition decides the receipt letters it may
  issue (responsable inscripto: A and B; monotributo and exento: C). NULL for other jurisdictions.
- ``outlets.pos_number``: ARCA's punto de venta (1..99998), unique per tenant where present.
- ``series.first_counter``: the first number a series hands out. 1 everywhere, except an Argentine
  series aligned with ARCA's last authorised receipt before its first seal (a point of sale that
  already issued receipts elsewhere); the seal payload then states it as ``series_first``.

Also merges the two heads (0012 and 0007's webhooks branch).

Revision ID: 0013
Revises: 0012, 0007
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = ("0012", "0007")
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch rebuild): SQLite supports it, and rebuilding outlets would touch
    # every table that references it.
    op.add_column("tenants", sa.Column("vat_condition", sa.String(40), nullable=True))
    op.add_column("outlets", sa.Column("pos_number", sa.Integer(), nullable=True))
    op.add_column("series", sa.Column("first_counter", sa.BigInteger(), nullable=False, server_default="1"))
    op.add_column("series", sa.Column("generation", sa.Integer(), nullable=False, server_default="1"))
    op.add_column("invoice_sync", sa.Column("details", sa.Text(), nullable=True))
    op.create_index("uq_outlets_tenant_id_pos_number", "outlets", ["tenant_id", "pos_number"], unique=True,
                    postgresql_where=sa.text("pos_number IS NOT NULL"),
                    sqlite_where=sa.text("pos_number IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("uq_outlets_tenant_id_pos_number", table_name="outlets")
    with op.batch_alter_table("invoice_sync") as batch:
        batch.drop_column("details")
    with op.batch_alter_table("series") as batch:
        batch.drop_column("generation")
        batch.drop_column("first_counter")
    with op.batch_alter_table("outlets") as batch:
        batch.drop_column("pos_number")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("vat_condition")
