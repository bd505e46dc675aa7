"""Row-level security on PostgreSQL: the second wall behind the ORM's tenant filter.

Policies compare ``tenant_id`` with ``current_setting('stalela.tenant_id')``, which the service sets
per transaction (``tenancy.context.bind_tenant``). The control plane sets ``stalela.platform = on``
for the few reads that must cross tenants (API key lookup, operator API, public verification).
FORCE makes the policy apply to the table owner too; superusers always bypass RLS, which is why the
service switches to the non-superuser ``app_role`` (settings.database_role) on every connection.
"""
from __future__ import annotations

from alembic import op

# One statement per execute: asyncpg prepares each and refuses several commands at once.
ROLE_SQL = (
    # Check first: PostgreSQL refuses CREATE ROLE without CREATEROLE even when the role exists.
    """DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
    CREATE ROLE {role} NOLOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$""",
    # Lets a non-superuser owner SET ROLE; harmless (and may fail quietly) for a superuser.
    """DO $$ BEGIN
  EXECUTE format('GRANT {role} TO %I', current_user);
EXCEPTION WHEN others THEN NULL;
END $$""",
    "GRANT USAGE ON SCHEMA public TO {role}",
)


def _is_pg() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def app_role() -> str:
    return op.get_context().config.attributes.get("app_role", "stalela_app")


def ensure_role() -> None:
    role = app_role()
    if _is_pg() and role:
        for statement in ROLE_SQL:
            op.execute(statement.format(role=role))
        op.execute(f"GRANT SELECT ON alembic_version TO {role}")


def protect(table: str, *, column: str = "tenant_id", append_only: bool = False) -> None:
    """Enable forced RLS on ``table`` and grant the app role what it may do there.

    ``append_only`` tables (sealed invoices, ledger) get no UPDATE or DELETE grant at all, so even
    a bug or an injected statement cannot rewrite fiscal history through the service's role.
    """
    if not _is_pg():
        return
    predicate = (
        "current_setting('stalela.platform', true) = 'on' "
        f"OR {column} = current_setting('stalela.tenant_id', true)"
    )
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({predicate}) WITH CHECK ({predicate})")
    role = app_role()
    if role:
        grants = "SELECT, INSERT" if append_only else "SELECT, INSERT, UPDATE, DELETE"
        op.execute(f"GRANT {grants} ON {table} TO {role}")


def forbid_rewrites(table: str) -> None:
    """Refuse UPDATE and DELETE on an append-only table for everyone, owners included, on both databases."""
    if _is_pg():
        op.execute(
            "CREATE OR REPLACE FUNCTION stalela_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege'; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION stalela_append_only()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )


def allow_rewrites(table: str) -> None:
    if _is_pg():
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    else:
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}")


def grant(table: str, privileges: str) -> None:
    """A platform table (no tenant_id): no RLS, only the app role's grant."""
    role = app_role()
    if _is_pg() and role:
        op.execute(f"GRANT {privileges} ON {table} TO {role}")
