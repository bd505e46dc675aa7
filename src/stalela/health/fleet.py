"""Health of the dedicated databases, for ``/readyz`` and the operator's Databases page.

A probe must stay cheap with hundreds of dedicated databases: it checks only pools this process has open
(a database nobody here uses is not this process's readiness), at most ``PER_PROBE`` of them, the stalest
first, and keeps each result ``FRESH_SECONDS``; the number of dedicated databases known comes from the
registry, cached as long. The Databases page asks for more (``survey``), still bounded per view.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.engine import make_url

from stalela.controlplane.placement import server_of
from stalela.controlplane.repository import RegistryRepository
from stalela.db.session import Database
from stalela.migrations import head_revisions, migration_status
from stalela.tenancy.context import bind_platform

FRESH_SECONDS = 5.0
PER_PROBE = 10
PROBE_TIMEOUT = 2.0


@dataclass
class Check:
    placement: str
    ok: bool
    revision: tuple[str, ...]
    at: float  # time.monotonic() of the check
    checked_at: float  # time.time(), for display
    error: str | None = None

    @property
    def at_head(self) -> bool:
        return self.revision == head_revisions()


class FleetHealth:
    """One per process (``health_of``): the last check of each dedicated database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.checks: dict[str, Check] = {}
        self._known: tuple[float, list[tuple[str, str]]] = (0.0, [])
        self._lock = asyncio.Lock()

    async def dedicated(self) -> list[tuple[str, str]]:
        """(tenant, placement) of every dedicated tenant, from the registry, cached ``FRESH_SECONDS``."""
        at, known = self._known
        if time.monotonic() - at > FRESH_SECONDS:
            async with self.db.transaction(readonly=True) as session:
                await bind_platform(session)
                known = await RegistryRepository(session).dedicated()
            self._known = (time.monotonic(), known)
        return known

    async def check(self, placement: str) -> Check:
        fleet = self.db.fleet
        known = fleet.open_databases().get(placement)
        before = known.last_used if known is not None else 0.0
        db = fleet.database(placement)
        now = time.monotonic()
        try:
            current, _head = await asyncio.wait_for(migration_status(db.engine), PROBE_TIMEOUT)
            result = Check(placement, True, current, now, time.time())
        except Exception as exc:  # unreachable, refused, timed out: that is the answer
            first = (str(exc).strip().splitlines() or [""])[0]
            result = Check(placement, False, (), now, time.time(), f"{type(exc).__name__}: {first}"[:200])
        finally:
            await fleet.idle_poll(placement, before)  # a probe is no use: it must not keep an idle pool open
        self.checks[placement] = result
        return result

    async def refresh(self, placements: list[str], limit: int) -> None:
        """Check the stalest of ``placements`` whose result is older than ``FRESH_SECONDS``, at most ``limit``."""
        now = time.monotonic()
        stale = [p for p in placements if p not in self.checks or now - self.checks[p].at > FRESH_SECONDS]
        stale.sort(key=lambda p: self.checks[p].at if p in self.checks else 0.0)
        async with self._lock:
            for placement in stale[:limit]:
                await self.check(placement)

    async def readiness(self) -> dict[str, Any]:
        """What ``/readyz`` adds: the open pools' health and the counts of known and reachable databases."""
        known = {p for _, p in await self.dedicated()}
        # Pools holding connections: the databases this process is using now (checked without a new connection).
        open_ = sorted(p for p, db in self.db.fleet.open_databases().items() if p in known and _pool(db)["connections"])
        await self.refresh(open_, PER_PROBE)
        checked = [self.checks[p] for p in known if p in self.checks]
        failing = [c for c in checked if not c.ok or not c.at_head]
        return {"known": len(known), "open": len(open_), "checked": len(checked),
                "reachable": sum(c.ok for c in checked),
                "failing": [{"database": _name(c.placement), "server": server_of(c.placement),
                             "error": c.error or f"revision {','.join(c.revision) or '-'} is not head"}
                            for c in sorted(failing, key=lambda c: c.placement)]}

    async def survey(self, limit: int) -> list[dict[str, Any]]:
        """Every database the operator should see: the control plane and each dedicated one, checking up to
        ``limit`` stale ones now."""
        tenants: dict[str, list[str]] = {}
        for tenant_id, placement in await self.dedicated():
            tenants.setdefault(placement, []).append(tenant_id)
        await self.refresh(sorted(tenants), limit)
        rows = [await self._control_row()]
        pools = self.db.fleet.open_databases()
        for placement in sorted(tenants, key=lambda p: tenants[p]):
            check = self.checks.get(placement)
            rows.append({"tier": "dedicated", "tenants": tenants[placement], "database": _name(placement),
                         "server": server_of(placement), **_pool(pools.get(placement)), **_check_fields(check)})
        return rows

    async def _control_row(self) -> dict[str, Any]:
        now = time.monotonic()
        try:
            current, _head = await asyncio.wait_for(migration_status(self.db.engine), PROBE_TIMEOUT)
            check = Check("", True, current, now, time.time())
        except Exception as exc:
            check = Check("", False, (), now, time.time(), type(exc).__name__)
        return {"tier": "shared", "tenants": [], "database": _name(self.db.url), "server": server_of(self.db.url),
                **_pool(self.db), **_check_fields(check)}


def _name(placement: str) -> str:
    database = make_url(placement).database or ""
    return database.rsplit("/", 1)[-1]


def _pool(db: Database | None) -> dict[str, Any]:
    if db is None:
        return {"pool_size": None, "connections": 0}
    pool = db.engine.pool
    size = getattr(pool, "size", lambda: None)()
    held = getattr(pool, "checkedout", lambda: 0)() + getattr(pool, "checkedin", lambda: 0)()
    return {"pool_size": size, "connections": held}


def _check_fields(check: Check | None) -> dict[str, Any]:
    if check is None:
        return {"revision": None, "at_head": None, "checked_at": None, "error": None, "ok": None}
    return {"revision": ",".join(check.revision) or None, "at_head": check.at_head,
            "checked_at": datetime.fromtimestamp(check.checked_at, timezone.utc),
            "error": check.error, "ok": check.ok}


_health: dict[int, FleetHealth] = {}


def health_of(db: Database) -> FleetHealth:
    """The process's ``FleetHealth`` of ``db`` (the control plane's Database lives as long as the app)."""
    found = _health.get(id(db))
    if found is None or found.db is not db:
        found = _health[id(db)] = FleetHealth(db)
    return found
