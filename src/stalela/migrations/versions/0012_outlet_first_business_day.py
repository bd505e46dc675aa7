"""The outlet's first business day, stored: the lower bound of the days reports accept.

It was derived from ``created_at`` in the outlet's *current* timezone, so changing the timezone could
move it past days that already had sales, which then could never be closed (nor any day after them).
Existing outlets get the local date of their creation in their current timezone, lowered to their
earliest day with figures or a Z report, so no day that has been used is ever refused.

SQLite keeps the column nullable: tightening it means rebuilding ``outlets``, which every tenant-owned
table references; the application always sets it.

Revision ID: 0012
Revises: 0011, 0008
Create Date: 2026-12-06
"""
from datetime import date
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

from stalela.db.base import UTCDateTime

revision = "0012"
# Also after 0008: the backfill reads the reports tables, which live on a sibling branch. (A merge, not
# depends_on: with depends_on the database would record fewer heads than the scripts have, and /readyz
# would call it unmigrated.)
down_revision = ("0011", "0008")
branch_labels = None
depends_on = None


def _backfill(conn: sa.Connection) -> None:
    if conn.dialect.name == "postgresql":
        # Outlets are under forced row-level security, owners included: the backfill spans all tenants.
        conn.execute(sa.text("SELECT set_config('stalela.platform', 'on', true)"))
    # Typed columns, so both databases answer dates and aware datetimes (SQLite stores text).
    outlets = sa.table("outlets", sa.column("tenant_id"), sa.column("id"), sa.column("timezone"),
                       sa.column("created_at", UTCDateTime()), sa.column("first_business_day", sa.Date()))
    used: dict[tuple[str, str], date] = {}
    for name in ("report_day_figures", "z_reports"):
        t = sa.table(name, sa.column("tenant_id"), sa.column("outlet_id"), sa.column("business_day", sa.Date()))
        for tenant_id, outlet_id, day in conn.execute(
                sa.select(t.c.tenant_id, t.c.outlet_id, sa.func.min(t.c.business_day))
                .group_by(t.c.tenant_id, t.c.outlet_id)):
            used[(tenant_id, outlet_id)] = min(day, used.get((tenant_id, outlet_id), day))
    rows = conn.execute(sa.select(outlets.c.tenant_id, outlets.c.id, outlets.c.created_at, outlets.c.timezone)).all()
    for tenant_id, outlet_id, created_at, tz in rows:
        day = created_at.astimezone(ZoneInfo(tz)).date()
        conn.execute(outlets.update()
                     .where(outlets.c.tenant_id == tenant_id, outlets.c.id == outlet_id)
                     .values(first_business_day=min(day, used.get((tenant_id, outlet_id), day))))


def upgrade() -> None:
    with op.batch_alter_table("outlets") as batch:
        batch.add_column(sa.Column("first_business_day", sa.Date(), nullable=True))
    _backfill(op.get_bind())
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("outlets", "first_business_day", nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("outlets") as batch:
        batch.drop_column("first_business_day")
