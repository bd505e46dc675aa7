"""Which database errors mean "the database is away" (503, retry later) and which a bug (500).

An outage is what an operator fixes, not a programmer: PostgreSQL unreachable, shutting down, not
accepting connections, read-only (a replica, a full disk, ``default_transaction_read_only``), out of
connections; a SQLite file that cannot be opened, written or locked. Everything else (constraint
violations, syntax, data errors) stays a 500, because hiding a bug behind "retry later" would make
clients retry it forever.
"""
from __future__ import annotations

import socket

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine

# SQLSTATE classes and codes (PostgreSQL appendix A): connection exception, insufficient resources
# (disk full, too many connections), operator intervention (shutdown, cannot connect now), system
# error (I/O); read-only transaction; object not in prerequisite state, which a connection attempt
# gets from a database with ALLOW_CONNECTIONS false. A deadlock (40P01) or serialization failure (40001)
# is PostgreSQL's SQLITE_BUSY: it rolled the whole transaction back, so "retry in a moment" is exact
# and safe (nothing was committed), where a 500 would say a bug.
_PG_CLASSES = ("08", "53", "57P", "58")
_PG_CODES = frozenset({"25006", "40P01", "40001"})
_SQLITE_NAMES = ("SQLITE_IOERR", "SQLITE_FULL", "SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_BUSY",
                 "SQLITE_LOCKED", "SQLITE_PROTOCOL")
_DRIVERS = ("asyncpg", "aiosqlite", "sqlalchemy")


def _outage_code(orig: BaseException | None) -> bool:
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state:
        return state in _PG_CODES or state.startswith(_PG_CLASSES)
    name = getattr(orig, "sqlite_errorname", None)
    return bool(name) and name.startswith(_SQLITE_NAMES)


def is_outage(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DBAPIError):
        # statement None: the error came while connecting, so whatever it says, we have no database.
        return exc.connection_invalidated or exc.statement is None or _outage_code(exc.orig)
    if isinstance(exc, sa_exc.TimeoutError):  # no pooled connection came free in time
        return True
    if isinstance(exc, (ConnectionError, TimeoutError, socket.gaierror)):
        # asyncpg lets the socket's own errors through when it cannot connect (refused, DNS, timeout).
        return _raised_by_driver(exc)
    return False


def _raised_by_driver(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__", "").startswith(_DRIVERS):
            return True
        tb = tb.tb_next
    return False


def invalidate_on_outage(engine: AsyncEngine) -> None:
    """Drop a connection that saw an outage instead of returning it to the pool.

    A session opened while the database was read-only stays read-only after the database is writable
    again, and one cut by a shutdown is dead: treating both as disconnects makes the pool replace
    them, so the service recovers by itself once the database is back.
    """
    @event.listens_for(engine.sync_engine, "handle_error")
    def _on_error(context):  # noqa: ANN001
        if not context.is_disconnect and _outage_code(context.original_exception):
            context.is_disconnect = True
