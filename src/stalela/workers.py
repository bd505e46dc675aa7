"""Background work, the same in `stalela serve` (embedded, in-process) and `stalela worker`.

- the outbox dispatcher (every side effect: authority sync, webhooks, ...)
- periodic ledger checkpoints
- the audit export runner
- the Z scheduler (closes business days after local midnight + grace)
- the void scheduler (voids the unused numbers of offline blocks whose credential expired + grace)
- the retention run (daily: marks what is past its rule, purges what was marked a grace ago)
- the sweep of expired portability exports (their files are deleted)
- usage: hourly storage samples, the refresh of the daily aggregates (billing)
- the dedicated databases' own loops (outbox, exports, checkpoints, Z, sweeps: controlplane/dataplane.py)
  and the eviction of their idle pools. Retention and the usage sampler find their tenants in the control
  plane and reach every tenant's database through ``bind_tenant``: they run once, here.
"""
from __future__ import annotations

import asyncio
import signal
from contextlib import asynccontextmanager
from typing import AsyncIterator

from stalela.config import Settings
from stalela.db.session import Database
from stalela.fiscal.reports.jobs import export_runner
from stalela.fiscal.ledger.tasks import periodic_checkpoints
from stalela.fiscal.reports.tasks import z_scheduler
from stalela.offline.tasks import void_scheduler
from stalela.observability.logging import get_logger
from stalela.observability.runtime import worker_lifespan
from stalela.outbox.dispatcher import Dispatcher
from stalela.privacy.retention_tasks import retention_scheduler
from stalela.privacy.export_tasks import export_sweeper
from stalela.billing.cycle import billing_cycle

# The composition root of the outbox's consumers: importing a domain's tasks module registers its
# handlers (outbox/registry.py). A domain that consumes events adds its line here; the app factory
# imports this module, so in-process workers and the scrape's topic list see the same handlers.
from stalela.authority import tasks as _authority_tasks  # noqa: F401
from stalela.authority.arca import tasks as _arca_tasks  # noqa: F401
from stalela.webhooks import tasks as _webhooks_tasks  # noqa: F401
from stalela.connectors import tasks as connector_tasks
from stalela.privacy import erasure_tasks as _erasure_tasks  # noqa: F401
from stalela.privacy.erasure_service import replay_journal
from stalela.privacy import offboarding_tasks
from stalela.privacy import export_tasks as _privacy_export_tasks  # noqa: F401
from stalela.controlplane import tasks as _controlplane_tasks  # noqa: F401
from stalela.controlplane import provisioning
from stalela.controlplane.dataplane import FleetSupervisor, janitor
from stalela import migrations
# Fiscal admission gates register the same way (fiscal/invoices/admission.py): billing's quotas.
from stalela.billing import quotas as _billing_quotas  # noqa: F401
from stalela.billing import resources as billing_resources
from stalela.billing import usage_tasks

# Provisioning migrates the databases it creates; the migrations package sits above the control plane.
provisioning.migrator = migrations.upgrade

log = get_logger("stalela.workers")
GRACE_SECONDS = 30


@asynccontextmanager
async def background(db: Database, settings: Settings, *, concurrency: int | None = None) -> AsyncIterator[Dispatcher]:
    """Run every background loop until the block exits; then stop gracefully and release claims."""
    dispatcher = Dispatcher(db, settings, concurrency=concurrency)
    billing_resources.all_resources(settings)  # the loops read the usage registry without settings
    tasks = [asyncio.create_task(dispatcher.run(), name="outbox"),
             asyncio.create_task(export_runner(db, settings), name="exports")]
    if settings.checkpoint_interval_seconds:
        tasks.append(asyncio.create_task(periodic_checkpoints(db, settings), name="checkpoints"))
    if settings.z_scheduler_interval_seconds:
        tasks.append(asyncio.create_task(z_scheduler(db, settings), name="z-reports"))
    if settings.offline_void_interval_seconds:
        tasks.append(asyncio.create_task(void_scheduler(db, settings), name="offline-voids"))
    if settings.offboarding_key_sweep_seconds:
        tasks.append(asyncio.create_task(offboarding_tasks.archive_key_sweeper(db, settings), name="archive-keys"))
    if settings.retention_interval_hours:
        tasks.append(asyncio.create_task(retention_scheduler(db, settings), name="retention"))
    if settings.export_sweep_seconds:
        tasks.append(asyncio.create_task(export_sweeper(db, settings), name="privacy-exports"))
    if settings.billing_interval_seconds:
        tasks.append(asyncio.create_task(billing_cycle(db, settings), name="billing"))
    if settings.usage_metering:
        tasks.append(asyncio.create_task(usage_tasks.storage_sampler(db, settings), name="usage-storage"))
    if settings.usage_aggregation_seconds:
        tasks.append(asyncio.create_task(usage_tasks.aggregation_loop(db, settings), name="usage-daily"))
    # Marketplace connections live in the control plane: one poll scheduler per process, for every tier.
    tasks.append(asyncio.create_task(connector_tasks.poll_scheduler(db, settings), name="connector-polls"))
    # The dedicated databases: their workers stop their dispatchers gracefully when cancelled.
    tasks.append(asyncio.create_task(FleetSupervisor(db, settings, concurrency=concurrency).run(), name="fleet"))
    try:
        yield dispatcher
    finally:
        dispatcher.stop()
        # The dispatcher finishes its current batch; the polling loops are simply cancelled.
        for task in tasks[1:]:
            task.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(tasks[0]), GRACE_SECONDS)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            tasks[0].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await dispatcher.release_all()
        except Exception:  # the database may be what is going away
            log.exception("outbox_release_failed")
        await dispatcher.close()


async def run_worker(settings: Settings, concurrency: int | None = None) -> None:
    """`stalela worker`: background work only, until SIGTERM or SIGINT, inside its metrics listener
    and trace flushing (``observability.runtime.worker_lifespan``)."""
    async with worker_lifespan(settings):
        await _run(settings, concurrency)


async def _run(settings: Settings, concurrency: int | None) -> None:
    db = Database.from_settings(settings)
    await replay_journal(db, settings)  # a restored database is erased again before any work
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("worker_started", concurrency=concurrency or settings.worker_concurrency)
    evictor = asyncio.create_task(janitor(db), name="fleet-janitor")  # the API's lifespan runs its own
    try:
        async with background(db, settings, concurrency=concurrency):
            await stop.wait()
            log.info("worker_stopping")
    finally:
        evictor.cancel()
        await asyncio.gather(evictor, return_exceptions=True)
        await db.dispose()
        log.info("worker_stopped")
