"""The data-plane databases a process talks to: one pool per dedicated tenant database, opened on first
use, bounded, and closed again when idle, so 200 idle dedicated tenants hold no connection.

A placement (``tenants.placement``) is the database URL without its password: passwords stay in the
settings (the dedicated-tier templates, or the control plane's URL for its own server), never in a table.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import structlog
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from stalela.db.session import Database

# structlog directly: the db layer sits beside observability, not above it.
log = structlog.get_logger("stalela.db.fleet")


@dataclass(frozen=True)
class FleetOptions:
    pool_size: int = 3
    idle_seconds: float = 60.0
    templates: tuple[str, ...] = ()  # URLs that may carry the password of a placement's server


def strip_password(url: str) -> str:
    # URL.set(password=None) keeps the password (None means "unchanged" there): replace the field itself.
    return make_url(url)._replace(password=None).render_as_string(hide_password=False)


def _server(url: Any) -> tuple:
    return (url.get_backend_name(), url.host, url.port or 5432, url.username)


class Fleet:
    def __init__(self, control: Database, options: FleetOptions) -> None:
        self.control = control
        self.options = options
        self._open: dict[str, Database] = {}

    def url_of(self, placement: str) -> str:
        """The placement's URL with the password of the configured server it names, if any."""
        url = make_url(placement)
        if url.password is None and not url.get_backend_name().startswith("sqlite"):
            for known in (*self.options.templates, self.control.url):
                candidate = make_url(known)
                if _server(candidate) == _server(url) and candidate.password is not None:
                    url = url.set(password=candidate.password)
                    break
        return url.render_as_string(hide_password=False)

    def database(self, placement: str) -> Database:
        db = self._open.get(placement)
        if db is None:
            db = type(self.control)(self.url_of(placement), role=self.control.role, pool_size=self.options.pool_size,
                          statement_cache=self.control.statement_cache, retry_after=self.control.retry_after,
                          control=self.control, overflow=0)
            self._open[placement] = db
        db.last_used = time.monotonic()
        return db

    def data_bind(self, placement: str | None, readonly: bool) -> Any:
        """The engine a session sends data-plane statements to; None: the control plane's own."""
        if placement is None:
            return None
        return self.database(placement).sync_engine(readonly)

    def open_databases(self) -> dict[str, Database]:
        return dict(self._open)

    async def evict_idle(self, now: float | None = None) -> int:
        """Close the pools of databases unused for ``idle_seconds`` (their engines stay usable: the next
        use opens a connection again). Returns how many were closed."""
        now = time.monotonic() if now is None else now
        closed = 0
        for placement, db in list(self._open.items()):
            if now - db.last_used >= self.options.idle_seconds and db.engine.pool.checkedout() == 0:
                await db.engine.dispose()
                closed += 1
        return closed

    async def idle_poll(self, placement: str, last_used: float) -> None:
        """After a background loop's poll of ``placement`` that found nothing to do: a poll is no use of the
        database (its last use goes back to ``last_used``, read before the poll), and once the database has
        been idle for ``idle_seconds`` the poll's connection is closed now rather than kept pooled until
        the next use, so an idle tenant holds no connection between polls."""
        db = self._open.get(placement)
        if db is None:
            return
        db.last_used = min(db.last_used, last_used)
        if time.monotonic() - db.last_used >= self.options.idle_seconds and db.engine.pool.checkedout() == 0:
            await db.engine.dispose()

    async def janitor(self, report: Callable[[int], None] | None = None) -> None:
        """Runs for the process's life (app lifespan, worker): evicts idle pools; ``report`` gets the
        connections held after each round (the process's gauge, set above this layer)."""
        interval = max(1.0, min(self.options.idle_seconds / 2, 30.0))
        while True:
            await asyncio.sleep(interval)
            try:
                await self.evict_idle()
                if report is not None:
                    report(self.connections())
            except Exception:  # a failing dispose must not end the loop
                log.exception("fleet_evict_failed")

    def connections(self) -> int:
        """Connections open to dedicated databases in this process (checked out or pooled)."""
        total = 0
        for db in self._open.values():
            pool = db.engine.pool
            total += getattr(pool, "checkedout", lambda: 0)() + getattr(pool, "checkedin", lambda: 0)()
        return total

    async def dispose(self) -> None:
        for db in list(self._open.values()):
            await db.engine.dispose()
        self._open.clear()
