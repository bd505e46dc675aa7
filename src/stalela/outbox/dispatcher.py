"""The outbox dispatcher: claim due events in batches, run their handlers, record the outcome.

Any number of dispatchers (threads of `stalela worker`, or the one inside `stalela serve`) run side
by side: claims are leases taken with SKIP LOCKED on PostgreSQL and inside serial write
transactions on SQLite. Outcomes of a batch are written together, so a no-op handler costs two
commits per batch, not per event. Failures back off exponentially with full jitter; after
``outbox_max_attempts`` the event is dead until replayed.
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import traceback
from datetime import timedelta

from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.db.session import Database
from stalela.observability.logging import get_logger
from stalela.observability.metrics import OUTBOX_DEAD, run_handler
from stalela.outbox.models import OutboxEvent
from stalela.outbox.relay import NatsRelay
from stalela.outbox.registry import Event, HandlerContext, RetryLater, batch_handlers_for, handlers_for
from stalela.outbox.repository import Key, OutboxRepository
from stalela.tenancy.context import bind_platform
from stalela.tenancy.repository import TenantRepository

log = get_logger("stalela.outbox")


def backoff(settings: Settings, attempts: int) -> float:
    """Full jitter (AWS architecture blog): uniform in [0, min(cap, base * 2^(attempts-1))]."""
    ceiling = min(settings.outbox_backoff_cap_seconds, settings.outbox_backoff_base_seconds * 2 ** (attempts - 1))
    return random.uniform(0, ceiling)


class Dispatcher:
    def __init__(self, db: Database, settings: Settings, *, worker_id: str | None = None,
                 concurrency: int | None = None, tenant_id: str | None = None) -> None:
        self.db = db
        # A drain of one tenant's events in a shared database (tests, a support engineer's replay): it must
        # not queue behind other tenants' retries, which can take the whole batch round after round.
        self.tenant_id = tenant_id
        self.settings = settings
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.concurrency = concurrency or settings.worker_concurrency
        self.context = HandlerContext(db, settings)
        self.stopping = asyncio.Event()
        self._claimed: set[Key] = set()
        self.relay = NatsRelay(settings, self._tier_of) if settings.nats_url else None

    async def run(self) -> None:
        """Until ``stop()``: claim, handle, repeat; idle-wait only when nothing was due."""
        while not self.stopping.is_set():
            try:
                handled = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database went away, say: keep the worker alive and try again
                log.exception("outbox_dispatch_failed", worker=self.worker_id)
                handled = 0
            if handled == 0:
                try:
                    await asyncio.wait_for(self.stopping.wait(), self.settings.outbox_poll_seconds)
                except asyncio.TimeoutError:
                    pass

    def stop(self) -> None:
        self.stopping.set()

    async def run_once(self) -> int:
        events = await self._claim()
        if not events:
            return 0
        failed = await self._run_batches(events)
        gate = asyncio.Semaphore(self.concurrency)
        outcomes = await asyncio.gather(*[self._handle(e, gate, failed.get((e.tenant_id, e.id))) for e in events])
        done = [key for key, ok in outcomes if ok]
        async with self.db.transaction() as session:
            await bind_platform(session)
            await OutboxRepository(session).complete(done, self.worker_id)
        self._claimed.difference_update(key for key, _ in outcomes)
        return len(events)

    async def _tier_of(self, tenant_id: str) -> str:
        """The relay's question (cached there): which tier is the tenant on? An unknown one is shared."""
        async with self.db.transaction(readonly=True) as session:
            await bind_platform(session)
            tenant = await TenantRepository(session).get(tenant_id)
        return tenant.tier if tenant is not None else "shared"

    async def close(self) -> None:
        if self.relay is not None:
            await self.relay.close()

    async def release_all(self) -> None:
        if self._claimed:
            async with self.db.transaction() as session:
                await bind_platform(session)
                await OutboxRepository(session).release(list(self._claimed), self.worker_id)
            self._claimed.clear()

    async def _claim(self) -> list[OutboxEvent]:
        async with self.db.transaction() as session:
            await bind_platform(session)
            rows = await OutboxRepository(session).claim(
                self.worker_id, self.settings.outbox_batch_size, timedelta(seconds=self.settings.outbox_lease_seconds),
                tenant_id=self.tenant_id)
        self._claimed.update((r.tenant_id, r.id) for r in rows)
        return rows

    async def _run_batches(self, rows: list[OutboxEvent]) -> dict[Key, Exception]:
        """Run the batch handlers (``registry.handles_batch``) over the claimed events of their topics; the
        events of a failed batch handler carry its exception into ``_handle``, which settles each."""
        by_topic: dict[str, list[OutboxEvent]] = {}
        for row in rows:
            if batch_handlers_for(row.topic):
                by_topic.setdefault(row.topic, []).append(row)
        failed: dict[Key, Exception] = {}
        for topic, group in by_topic.items():
            events = [Event(r.tenant_id, r.id, r.topic, json.loads(r.payload), r.attempts) for r in group]
            for handler in batch_handlers_for(topic):
                try:
                    await handler(self.context, events)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    failed.update(((r.tenant_id, r.id), exc) for r in group)
                    break
        return failed

    async def _handle(self, row: OutboxEvent, gate: asyncio.Semaphore,
                      failed: Exception | None = None) -> tuple[Key, bool]:
        key = (row.tenant_id, row.id)
        handlers = handlers_for(row.topic)
        event = Event(row.tenant_id, row.id, row.topic, json.loads(row.payload), row.attempts)
        async with gate:
            try:
                if failed is not None:  # its batch handler failed: settled like a failure of its own
                    raise failed
                for handler in handlers:  # a topic nobody consumes (yet) is delivered once relayed
                    await run_handler(handler, self.context, event, (RetryLater,))  # span, metrics, log context
                # After the handlers, so a NATS outage never holds up the authority sync; a retry
                # re-runs the (idempotent) handlers and republishes, which NATS de-duplicates.
                if self.relay is not None:
                    await self.relay.publish(row)
                return key, True
            except RetryLater as later:
                await self._reschedule(key, later.delay, str(later), refund=True)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"
                if row.attempts >= self.settings.outbox_max_attempts:
                    log.error("outbox_event_dead", topic=row.topic, event_id=row.id, tenant_id=row.tenant_id,
                              attempts=row.attempts, error=str(exc)[:200])
                    async with self.db.transaction() as session:
                        await bind_platform(session)
                        await OutboxRepository(session).bury(key, self.worker_id, error)
                    OUTBOX_DEAD.labels(row.topic).inc()
                else:
                    log.warning("outbox_handler_failed", topic=row.topic, event_id=row.id, tenant_id=row.tenant_id,
                                attempts=row.attempts, error=str(exc)[:200])
                    await self._reschedule(key, backoff(self.settings, row.attempts), error)
        return key, False

    async def _reschedule(self, key: Key, delay: float, error: str, *, refund: bool = False) -> None:
        async with self.db.transaction() as session:
            await bind_platform(session)
            await OutboxRepository(session).reschedule(key, self.worker_id, utcnow() + timedelta(seconds=delay),
                                                       error, refund_attempt=refund)
