"""Engine factory for the two supported databases.

SQLite (embedded default): WAL, foreign keys, a busy timeout, and ``BEGIN IMMEDIATE`` for write
transactions, because a deferred transaction that later writes deadlocks on the lock upgrade under
concurrency ("database is locked"). PostgreSQL: asyncpg, and ``SET ROLE`` to a non-superuser role so
row-level security applies even when the URL names a superuser.
"""
from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

# Settings normalise the URL (config sits below db); re-exported for the callers of this module.
from stalela.config import DatabaseUrlError, normalize_database_url  # noqa: F401
from stalela.db.outages import invalidate_on_outage

READONLY = "stalela_readonly"
_ROLE_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def is_sqlite_url(url: str) -> bool:
    return url.startswith("sqlite")


def create_engine(url: str, *, role: str = "", pool_size: int = 10, statement_cache: bool = True,
                  overflow: int | None = None) -> AsyncEngine:
    url = normalize_database_url(url)
    if is_sqlite_url(url):
        path = make_url(url).database
        # A URI (file:...?uri=true) names an existing file; it is no directory to create.
        if path and path != ":memory:" and not path.startswith("file:"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 60})
        _install_sqlite_hooks(engine)
        return engine

    if role and not _ROLE_RE.match(role):
        raise DatabaseUrlError(f"invalid database role name {role!r}")
    connect_args: dict = {}
    if not statement_cache:
        connect_args["statement_cache_size"] = 0
    engine = create_async_engine(
        url, pool_size=pool_size, max_overflow=pool_size if overflow is None else overflow, pool_pre_ping=True,
        connect_args=connect_args
    )
    invalidate_on_outage(engine)
    if role:
        @event.listens_for(engine.sync_engine, "connect")
        def _set_role(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute(f"SET ROLE {role}")
            cur.close()

    return engine


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn, _record):  # noqa: ANN001
        # Take transaction control away from the driver so we can say BEGIN IMMEDIATE ourselves.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA synchronous=FULL")
        # Deleted content is overwritten, not left in free pages: an erased person's data must not
        # linger in the file (GDPR Art. 17; docs/privacy.md).
        cur.execute("PRAGMA secure_delete=ON")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn):  # noqa: ANN001
        if conn.get_execution_options().get(READONLY):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
