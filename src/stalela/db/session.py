"""The unit of work: one transaction per request or worker job, committed at the boundary.

Services receive the ``AsyncSession`` and only ``flush``; whoever opened the transaction here
commits it (or rolls it back on any exception). A database outage leaves here as ``DatabaseUnavailable``
(503, with Retry-After), whichever statement met it, so requests, the sealer and the workers all see
one typed error instead of a driver exception.
"""
from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from stalela.config import Settings
from stalela.db.engine import READONLY, create_engine, is_sqlite_url
from stalela.db.outages import is_outage
from stalela.errors import DatabaseUnavailable


class Database:
    def __init__(self, url: str, *, role: str = "", pool_size: int = 10, statement_cache: bool = True,
                 retry_after: int = DatabaseUnavailable.retry_after) -> None:
        self.url = url
        self.retry_after = retry_after
        self.is_sqlite = is_sqlite_url(url)
        self.engine: AsyncEngine = create_engine(
            url, role=role, pool_size=pool_size, statement_cache=statement_cache
        )
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        self._readonly_sessions = async_sessionmaker(
            self.engine.execution_options(**{READONLY: True}), expire_on_commit=False, autoflush=False
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> "Database":
        return cls(
            settings.effective_database_url,
            role=settings.database_role,
            pool_size=settings.database_pool_size,
            statement_cache=settings.database_statement_cache,
            retry_after=settings.unavailable_retry_after_seconds,
        )

    @asynccontextmanager
    async def transaction(self, *, readonly: bool = False) -> AsyncIterator[AsyncSession]:
        factory = self._readonly_sessions if readonly else self._sessions
        try:
            async with factory() as session:
                async with session.begin():
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
        await self.engine.dispose()
