"""Tenant moves: a change log, so that a move's freeze costs what changed, not the tenant's size.

While a tenant moves, a trigger per table of its source database (created by the move for that tenant
only, dropped when it ends) writes the key of every row of the tenant inserted, updated or deleted into
``move_changes``, in the writing transaction itself, with that transaction's id: the catch-up under the
freeze reads the keys changed since the online copy's snapshot from here instead of scanning every row.

PostgreSQL only (moves are). The capture function runs as the table owner (``SECURITY DEFINER``), so the
application role may only read the log; its row-level security lets every capture in (a write of the
tenant must never fail because of its move) and lets only the platform read.

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-07
"""
from alembic import op

from stalela.db import rls

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None

CAPTURE = """
CREATE OR REPLACE FUNCTION stalela_move_capture() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  new_row jsonb;
  old_row jsonb;
  new_key jsonb := '[]'::jsonb;
  old_key jsonb := '[]'::jsonb;
  col text;
BEGIN
  -- TG_ARGV: the table's primary key columns, in order.
  IF TG_OP <> 'DELETE' THEN new_row := to_jsonb(NEW); END IF;
  IF TG_OP <> 'INSERT' THEN old_row := to_jsonb(OLD); END IF;
  FOREACH col IN ARRAY TG_ARGV LOOP
    IF new_row IS NOT NULL THEN new_key := new_key || jsonb_build_array(new_row -> col); END IF;
    IF old_row IS NOT NULL THEN old_key := old_key || jsonb_build_array(old_row -> col); END IF;
  END LOOP;
  IF new_row IS NOT NULL THEN
    INSERT INTO move_changes (tenant_id, tbl, key) VALUES (new_row ->> 'tenant_id', TG_TABLE_NAME, new_key);
  END IF;
  -- A delete, or an update that changed the key: the old key is gone from the source.
  IF old_row IS NOT NULL AND (new_row IS NULL OR old_key <> new_key) THEN
    INSERT INTO move_changes (tenant_id, tbl, key) VALUES (old_row ->> 'tenant_id', TG_TABLE_NAME, old_key);
  END IF;
  RETURN NULL;
END $$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("""CREATE TABLE move_changes (
        tenant_id varchar(40) NOT NULL,
        id bigint GENERATED ALWAYS AS IDENTITY,
        tbl varchar(63) NOT NULL,
        key jsonb NOT NULL,  -- the row's primary key values, in order (the trigger's arguments)
        xact xid8 NOT NULL DEFAULT pg_current_xact_id(),
        PRIMARY KEY (tenant_id, tbl, id))""")  # a pass reads one table's keys at a time
    op.execute("ALTER TABLE move_changes ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE move_changes FORCE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY platform_reads ON move_changes USING "
               "(current_setting('stalela.platform', true) = 'on')")
    op.execute("CREATE POLICY captures ON move_changes FOR INSERT WITH CHECK (true)")
    op.execute(CAPTURE)
    # Read only, past RLS (the platform flag), like the operator's other views: the application role never
    # writes the log (the capture runs as the owner).
    role = rls.app_role()
    if role:
        op.execute(f"GRANT SELECT ON move_changes TO {role}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION IF EXISTS stalela_move_capture() CASCADE")
    op.execute("DROP TABLE IF EXISTS move_changes")
