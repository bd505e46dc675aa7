"""The unit of work: one transaction per request or worker job, committed at the boundary.

Services receive the ``AsyncSession`` and only ``flush``; whoever opened the transaction here
commits it (or rolls it back on any exception). A database outage leaves here as ``DatabaseUnavailable``
(503, with Retry-After), whichever statement met it, so requests, the sealer and the workers all see
one typed error instead of a driver exception.
"""
from __future__ import annotations

import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from stalela.config import Settings, normalize_database_url
from stalela.db.engine import READONLY, create_engine, is_sqlite_url
from stalela.db.fleet import Fleet, FleetOptions
from stalela.db.outages import is_outage
from stalela.db.routing import DATA_BIND, RoutedSession

# What a session knows about where it runs (session.info): the Database that opened it, whether it is a
# read transaction, and the data plane it returns to when unbound (a dedicated database's own sessions).
DATABASE = "stalela.database"
READONLY_SESSION = "stalela.readonly"
HOME_BIND = "stalela.home_bind"
PINNED = "stalela.pinned"
from stalela.errors import DatabaseUnavailable


class Database:
    """A database and its pool. The control plane's (``control`` None) also holds the fleet of dedicated
    databases; a dedicated one (``control`` set) opens sessions whose control-plane statements go to the
    control plane (db/routing.py)."""

    def __init__(self, url: str, *, role: str = "", pool_size: int = 10, statement_cache: bool = True,
                 retry_after: int = DatabaseUnavailable.retry_after, control: "Database | None" = None,
                 fleet: FleetOptions | None = None, pinned: bool = False, overflow: int | None = None) -> None:
        self.url = url
        self.role = role
        self.statement_cache = statement_cache
        self.retry_after = retry_after
        self.is_sqlite = is_sqlite_url(url)
        self.control = control
        # Pinned: its sessions keep this database as their data plane even when bound to a tenant placed
        # elsewhere (a move reads and verifies the copy before routing points at it).
        self.pinned = pinned
        self.last_used = time.monotonic()
        self.engine: AsyncEngine = create_engine(
            url, role=role, pool_size=pool_size, statement_cache=statement_cache, overflow=overflow
        )
        self._readonly_engine = self.engine.execution_options(**{READONLY: True})
        self.fleet: Fleet = control.fleet if control is not None else Fleet(self, fleet or FleetOptions())
        bind = control if control is not None else self
        self._sessions = async_sessionmaker(bind.engine, expire_on_commit=False, autoflush=False,
                                            sync_session_class=RoutedSession)
        self._readonly_sessions = async_sessionmaker(bind._readonly_engine, expire_on_commit=False, autoflush=False,
                                                     sync_session_class=RoutedSession)

    @classmethod
    def from_settings(cls, settings: Settings) -> "Database":
        # Normalised once (postgres:// or postgresql:// alike), so a placement finds its server's password.
        templates = tuple(normalize_database_url(t.strip().replace("{tenant}", "x"))
                          for t in (settings.dedicated_database_url_template or "").split(",") if t.strip())
        return cls(
            settings.effective_database_url,
            role=settings.database_role,
            pool_size=settings.database_pool_size,
            statement_cache=settings.database_statement_cache,
            retry_after=settings.unavailable_retry_after_seconds,
            fleet=FleetOptions(pool_size=settings.dedicated_pool_size,
                               idle_seconds=settings.dedicated_pool_idle_seconds, templates=templates),
        )

    def sync_engine(self, readonly: bool = False) -> Any:
        return (self._readonly_engine if readonly else self.engine).sync_engine

    @asynccontextmanager
    async def transaction(self, *, readonly: bool = False) -> AsyncIterator[AsyncSession]:
        factory = self._readonly_sessions if readonly else self._sessions
        self.last_used = time.monotonic()
        try:
            async with factory() as session:
                info = session.info
                info[DATABASE], info[READONLY_SESSION] = self, readonly
                if self.control is not None:
                    info[DATA_BIND] = info[HOME_BIND] = self.sync_engine(readonly)
                    info[PINNED] = self.pinned
                async with session.begin():
                    if self.control is not None and self.is_sqlite:
                        # Every session takes the control plane's file first (tenant-bound ones do in
                        # bind_tenant): one lock order, so two SQLite files can never deadlock.
                        await session.execute(text("SELECT 1"), bind_arguments={"bind": self.control.engine.sync_engine})
                    yield session
        except Exception as exc:
            if not is_outage(exc):
                raise
            raise self.unavailable() from exc

    def unavailable(self) -> DatabaseUnavailable:
        """The answer to an outage of this database (also for driver errors met outside ``transaction``)."""
        return DatabaseUnavailable(f"the database is unavailable; retry in {self.retry_after} s",
                                   retry_after=self.retry_after)

    async def scrub(self) -> None:
        """After an erasure: SQLite copies the pages it rewrote into the WAL; a TRUNCATE checkpoint moves them
        into the file (where ``secure_delete`` zeroed what was deleted) and empties the WAL. PostgreSQL's dead
        row versions are reclaimed by (auto)vacuum: see docs/privacy.md."""
        if self.is_sqlite:
            async with self.engine.connect() as conn:
                # On the driver's connection: through SQLAlchemy it would run inside our BEGIN IMMEDIATE,
                # where SQLite refuses a checkpoint.
                raw = await conn.get_raw_connection()
                cursor = await raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                await cursor.close()

    async def dispose(self) -> None:
        if self.control is None:
            await self.fleet.dispose()
        await self.engine.dispose()
