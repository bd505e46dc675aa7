"""Background work of the dedicated databases: one worker per database, started and stopped by a supervisor.

A dedicated tenant's data-plane rows (its outbox, export jobs, Merkle log, business days, archive keys,
portability exports) live in its own database, so the loops that find work by reading those tables must
read every dedicated database too. The loops that find their tenants in the control plane (retention, the
usage storage sampler, billing, usage aggregation) already reach every tenant through ``bind_tenant`` and
stay single (``stalela.workers.background``).

Hundreds of mostly idle databases must cost next to nothing, so a dedicated database gets one task, not
one per loop: a pass runs the outbox dispatcher and the export runner once, and the periodic loops
(checkpoints, the Z scheduler, the offline voids, the archive-key and portability-export sweeps) when their interval has
passed. An idle database backs off up to ``dedicated_poll_max_seconds`` between passes, and its pool is
closed as soon as it has been idle for ``dedicated_pool_idle_seconds`` (``Fleet.idle_poll``). A new event
wakes it at once: the outbox's ``NOTIFY`` on the control plane, the one connection per process listening
(PostgreSQL; embedded SQLite just polls).
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

from sqlalchemy.engine import make_url

from stalela.config import Settings
from stalela.controlplane.repository import RegistryRepository
from stalela.db.session import Database
from stalela.fiscal.ledger.tasks import checkpoint_due_tenants
from stalela.fiscal.reports import jobs as export_jobs
from stalela.fiscal.reports.tasks import close_due_days
from stalela.observability.logging import get_logger
from stalela.observability.metrics import DEDICATED_CONNECTIONS
from stalela.offline.tasks import void_due_blocks
from stalela.outbox.dispatcher import Dispatcher
from stalela.outbox import service as outbox
from stalela.privacy.export_service import expire_due
from stalela.privacy.offboarding_tasks import sweep_archive_keys
from stalela.tenancy.context import bind_platform

log = get_logger("stalela.controlplane.dataplane")
REFRESH_SECONDS = 10.0  # how often the supervisor re-reads the registry without being told
SECOND_LOOK_SECONDS = 0.3  # after a wake-up: the dedicated database may commit after the control plane
# Waiting exports are looked for at most this often, as the shared runner's idle poll does
# (fiscal.reports.jobs.export_runner): a busy tenant's database gets a pass per outbox wake-up, often for one
# event, and that look was one transaction in four of such a pass.
EXPORT_IDLE_SECONDS = 1.0

Periodic = Callable[[Database, Settings], Awaitable[Any]]


def periodic_loops(settings: Settings) -> list[tuple[str, float, Periodic]]:
    """(name, interval, one round) of the periodic loops a dedicated database needs; 0 disables, as in
    ``background``. A round runs at a pass, so an idle database is touched at most once per backoff."""
    loops = [("checkpoints", min(settings.checkpoint_interval_seconds, 60) if settings.checkpoint_interval_seconds
              else 0, checkpoint_due_tenants),
             ("z-reports", settings.z_scheduler_interval_seconds, close_due_days),
             ("offline-voids", settings.offline_void_interval_seconds, void_due_blocks),
             ("archive-keys", settings.offboarding_key_sweep_seconds, sweep_archive_keys),
             ("privacy-exports", settings.export_sweep_seconds, expire_due)]
    return [(name, float(every), run) for name, every, run in loops if every]


class DatabaseWorker:
    """The background work of one dedicated database."""

    def __init__(self, control: Database, settings: Settings, placement: str, *, concurrency: int | None = None,
                 gate: asyncio.Semaphore | None = None):
        self.control = control
        # Shared by every dedicated database of the process: at most this many passes (and so connections)
        # at once, however many tenants are busy.
        self.gate = gate or asyncio.Semaphore(settings.worker_concurrency)
        self.settings = settings
        self.placement = placement
        self.db = control.fleet.database(placement)
        self.dispatcher = Dispatcher(self.db, settings, concurrency=concurrency)
        self.woken = asyncio.Event()
        self.passes = 0
        start = time.monotonic()
        self._loops = periodic_loops(settings)
        self._next = {name: start + every for name, every, _ in self._loops}
        self._next_export = start
        self._second_look: asyncio.TimerHandle | None = None

    def wake(self) -> None:
        """Poll now, and once more shortly after (the event's database may not have committed yet)."""
        self.woken.set()
        if self._second_look is not None:
            self._second_look.cancel()
        self._second_look = asyncio.get_running_loop().call_later(SECOND_LOOK_SECONDS, self.woken.set)

    def stop(self) -> None:
        self.dispatcher.stop()
        self.woken.set()

    async def run(self) -> None:
        poll, ceiling = self.settings.outbox_poll_seconds, self.settings.dedicated_poll_max_seconds
        delay = poll
        while not self.dispatcher.stopping.is_set():
            self.woken.clear()
            before = self.db.last_used
            look = self._second_look  # a wake-up during the pass brings its own, which stays
            try:
                async with self.gate:
                    worked, busy = await self.run_once()
                    if worked and look is not None and self._second_look is look:
                        # The pass found work: the next look comes after ``poll`` anyway (below), which also
                        # catches a commit later than the wake-up; a second look on top is one more empty
                        # pass (and, past the connection budget, one more connection) per event.
                        look.cancel()
                        self._second_look = None
                    if self.db.fleet.connections() > self.settings.worker_concurrency:
                        # More databases hold a connection than passes may run at once: hand this one's back,
                        # so that the process holds about one connection per pass, not one per busy tenant.
                        await self.db.engine.dispose()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database went away, say: keep going, back off
                log.exception("dedicated_pass_failed", database=make_url(self.placement).database)
                worked = busy = False
            self.passes += 1
            if busy:
                delay = poll
                continue
            if worked:
                delay = poll
            else:
                await self.control.fleet.idle_poll(self.placement, before)
            try:
                await asyncio.wait_for(self.woken.wait(), delay)
                delay = poll  # woken: work is coming, look again soon
            except asyncio.TimeoutError:
                delay = min(delay * 2, ceiling)
        try:
            await self.dispatcher.release_all()
        finally:
            await self.dispatcher.close()

    async def run_once(self) -> tuple[bool, bool]:
        """One pass; whether it found work, and whether more may be waiting now (a full batch, an export): a
        pass that drained the outbox is not followed at once by an empty one. A busy tenant's database gets a
        few events per pass, and that empty pass was one in two."""
        handled = await self.dispatcher.run_once()
        exported = None
        if time.monotonic() >= self._next_export:
            exported = await export_jobs.run_one(self.db, self.settings)
            self._next_export = time.monotonic() + (0 if exported else EXPORT_IDLE_SECONDS)
        now = time.monotonic()
        for name, every, run in self._loops:
            if now >= self._next[name]:
                self._next[name] = now + every
                try:
                    await run(self.db, self.settings)
                except Exception:  # one loop's failure must not stop the others
                    log.exception("dedicated_loop_failed", loop=name, database=make_url(self.placement).database)
        return bool(handled or exported), handled >= self.settings.outbox_batch_size or bool(exported)


class FleetSupervisor:
    """Keeps one ``DatabaseWorker`` per dedicated database that serves a tenant: started when a tenant is
    provisioned or moved in, stopped when its placement is gone (moved out)."""

    def __init__(self, db: Database, settings: Settings, *, concurrency: int | None = None) -> None:
        self.db = db
        self.settings = settings
        self.concurrency = concurrency
        self.workers: dict[str, DatabaseWorker] = {}
        self.gate = asyncio.Semaphore(settings.worker_concurrency)
        self._tasks: dict[str, asyncio.Task] = {}
        self._tenants: dict[str, str] = {}  # tenant id -> placement
        self._refresh = asyncio.Event()
        self._listener: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake_tenant(self, tenant_id: str) -> None:
        """Called on this supervisor's loop (the NOTIFY listener) or from a commit anywhere in the process."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake, tenant_id)

    def _wake(self, tenant_id: str) -> None:
        placement = self._tenants.get(tenant_id)
        if placement is None or placement not in self.workers:
            self._refresh.set()  # a tenant this process has not seen yet: read the registry now
        else:
            self.workers[placement].wake()

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        outbox.local_wakeups.append(self.wake_tenant)
        try:
            while True:
                await self._listen()
                # Cleared before the read: a wake-up arriving during it must trigger the next one.
                self._refresh.clear()
                try:
                    await self.refresh()
                except asyncio.CancelledError:
                    raise
                except Exception:  # the control plane may be away: keep the workers we have
                    log.exception("fleet_refresh_failed")
                try:
                    await asyncio.wait_for(self._refresh.wait(), REFRESH_SECONDS)
                except asyncio.TimeoutError:
                    pass
        finally:
            outbox.local_wakeups.remove(self.wake_tenant)
            await self.stop()

    async def refresh(self) -> None:
        async with self.db.transaction(readonly=True) as session:
            await bind_platform(session)
            serving = await RegistryRepository(session).dedicated_serving()
        self._tenants = dict(serving)
        wanted = set(self._tenants.values())
        for placement in sorted(wanted - set(self.workers)):
            worker = DatabaseWorker(self.db, self.settings, placement, concurrency=self.concurrency, gate=self.gate)
            self.workers[placement] = worker
            self._tasks[placement] = asyncio.create_task(worker.run(), name=f"dedicated:{placement}")
            log.info("dedicated_worker_started", database=make_url(placement).database)
        for placement in sorted(set(self.workers) - wanted):
            await self._stop_one(placement)
            log.info("dedicated_worker_stopped", database=make_url(placement).database)

    async def _stop_one(self, placement: str) -> None:
        worker, task = self.workers.pop(placement), self._tasks.pop(placement)
        worker.stop()
        try:
            await asyncio.wait_for(asyncio.shield(task), self.settings.outbox_lease_seconds)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def stop(self) -> None:
        await asyncio.gather(*(self._stop_one(p) for p in list(self.workers)), return_exceptions=True)
        if self._listener is not None:
            listener, self._listener = self._listener, None
            try:
                await listener.close(timeout=2)
            except Exception:  # going away anyway
                listener.terminate()

    async def _listen(self) -> None:
        """One listening connection per process on the control plane (PostgreSQL), re-opened if it was lost;
        without it the workers still poll."""
        if self.db.is_sqlite or (self._listener is not None and not self._listener.is_closed()):
            return
        import asyncpg  # the driver itself: SQLAlchemy has no LISTEN

        url = make_url(self.db.url)
        try:
            conn = await asyncpg.connect(user=url.username, password=url.password, host=url.host,
                                         port=url.port or 5432, database=url.database)
            await conn.add_listener(outbox.WAKE_CHANNEL, lambda _c, _pid, _ch, tenant: self.wake_tenant(tenant))
        except Exception:
            log.exception("fleet_listen_failed")
            return
        self._listener = conn
        self._refresh.set()  # events written while nobody listened: look at once


async def janitor(db: Database) -> None:
    """The fleet's eviction of idle pools, feeding this process's gauge of dedicated connections."""
    await db.fleet.janitor(report=DEDICATED_CONNECTIONS.set)
