"""Rewriting fiscal rows behind the service's back, as an attacker with database access would.

The service cannot do this (no UPDATE/DELETE grants, append-only triggers), so the tests go around
it: on PostgreSQL as the superuser with triggers off for the session, on SQLite by dropping the
trigger inside the tampering transaction and recreating it.
"""
from __future__ import annotations

import sqlite3

import psycopg
from sqlalchemy.engine import make_url

TRIGGERS = {
    "invoices": ("update", "delete"),
    "checkpoints": ("update", "delete"),
    "merkle_nodes": ("update", "delete"),
}


def tamper(database_url: str, statements: list[tuple[str, dict]]) -> None:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        conn = sqlite3.connect(url.database, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            saved = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall()
            for name, _ in saved:
                conn.execute(f"DROP TRIGGER {name}")
            for sql, params in statements:
                conn.execute(sql.replace("%(", ":").replace(")s", ""), params)
            for _, sql in saved:
                conn.execute(sql)
            conn.execute("COMMIT")
        finally:
            conn.close()
        return
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=False) as conn:
        conn.execute("SET session_replication_role = replica")  # superuser only: row triggers off
        for sql, params in statements:
            conn.execute(sql, params)
        conn.commit()
