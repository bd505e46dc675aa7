"""What one scrape answers: the process metrics (summed over every worker's shared files in
multiprocess mode) plus gauges read from the database at scrape time, cached for a few seconds.

Reading state from the database instead of maintaining gauges in every process keeps them right
whatever number of processes (API workers, `stalela worker`s, hosts) changes it, and costs a few
aggregate queries per scrape instead of work on every seal.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Iterable

import anyio
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from sqlalchemy import func, select

from stalela.db.base import utcnow
from stalela.observability import metrics
from stalela.observability.logging import get_logger

log = get_logger("stalela.metrics")


class _Delegate:
    """Exposes the default registry (single-process mode) through the scrape registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        return self.registry.collect()


def _consumed_topics() -> set[str]:
    """Topics some handler consumes: they read 0 when nothing is pending, rather than being absent."""
    from stalela.outbox import registry

    registry.handlers_for("")  # imports the domains' tasks modules, which register their topics
    return {topic for topic, handlers in getattr(registry, "_handlers", {}).items() if handlers}


class DatabaseGauges:
    """The database-derived gauges of ``metrics.DATABASE_GAUGES``, refreshed at most every ``ttl`` s."""

    def __init__(self, db: Any, ttl: float, *, tenant_labels: bool = True) -> None:
        self.db = db
        self.ttl = ttl
        self.tenant_labels = tenant_labels
        self._families: list[Metric] = []
        self._at = 0.0
        self._error = 0
        self._lock: asyncio.Lock | None = None
        self._topics: set[str] = set()  # once seen, a topic reads 0 instead of vanishing when drained

    async def refresh(self) -> None:
        if time.monotonic() - self._at < self.ttl:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if time.monotonic() - self._at < self.ttl:
                return
            try:
                self._families = await self._read()
                self._error = 0
            except Exception as exc:  # keep the last values; say so in metrics_scrape_errors
                log.warning("metrics_database_read_failed", error=type(exc).__name__)
                self._error = 1
            self._at = time.monotonic()

    async def _read(self) -> list[Metric]:
        from stalela.authority.models import InvoiceSync
        from stalela.fiscal.invoices.models import Series
        from stalela.outbox.repository import OutboxRepository
        from stalela.tenancy.context import bind_platform
        from stalela.tenancy.models import Tenant

        def gauge(name: str) -> GaugeMetricFamily:
            doc, labels = metrics.DATABASE_GAUGES[name]
            return GaugeMetricFamily(name, doc, labels=labels)

        pending, oldest, dead = gauge("outbox_pending"), gauge("outbox_oldest_pending_seconds"), gauge("outbox_dead_letters")
        tenants, counters = gauge("tenant_count"), gauge("fiscal_counter_value")
        sync_pending, sync_oldest = gauge("authority_sync_pending"), gauge("authority_sync_oldest_pending_seconds")
        now = utcnow()
        async with self.db.transaction(readonly=True) as session:
            await bind_platform(session)
            rows = {row["topic"]: row for row in await OutboxRepository(session).stats()}
            self._topics.update(rows)
            self._topics.update(_consumed_topics())
            for topic in sorted(self._topics):
                row = rows.get(topic) or {"pending": 0, "dead": 0, "oldest_pending_seconds": None}
                pending.add_metric([topic], row["pending"])
                dead.add_metric([topic], row["dead"])
                oldest.add_metric([topic], row["oldest_pending_seconds"] or 0.0)
            for status, count in await session.execute(
                    select(Tenant.status, func.count()).group_by(Tenant.status)):
                tenants.add_metric([status], count)
            if self.tenant_labels:
                for tenant_id, outlet_id, counter in await session.execute(
                        select(Series.tenant_id, Series.outlet_id, func.max(Series.counter))
                        .group_by(Series.tenant_id, Series.outlet_id)):
                    counters.add_metric([tenant_id, outlet_id], counter or 0)
            oldest_sealed = None
            for status, count, first in await session.execute(
                    select(InvoiceSync.status, func.count(), func.min(InvoiceSync.sealed_at))
                    .where(InvoiceSync.status != "acknowledged").group_by(InvoiceSync.status)):
                sync_pending.add_metric([status], count)
                if status == "pending" and first is not None:
                    oldest_sealed = first
            sync_oldest.add_metric([], (now - oldest_sealed).total_seconds() if oldest_sealed else 0.0)
        return [pending, oldest, dead, tenants, counters, sync_pending, sync_oldest]

    def collect(self) -> Iterable[Metric]:
        yield from self._families
        errors = GaugeMetricFamily("metrics_scrape_errors", metrics.DATABASE_GAUGES["metrics_scrape_errors"][0])
        errors.add_metric([], self._error)
        yield errors


class Exporter:
    """Builds the text a scrape answers. One per process (and per app in tests)."""

    def __init__(self, db: Any = None, *, cache_seconds: float = 5.0, tenant_labels: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        directory = metrics.multiprocess_dir()
        if directory:
            from prometheus_client import multiprocess

            multiprocess.MultiProcessCollector(self.registry, path=directory)
        else:
            self.registry.register(_Delegate(REGISTRY))
        self.database = DatabaseGauges(db, cache_seconds, tenant_labels=tenant_labels) if db is not None else None
        if self.database is not None:
            self.registry.register(self.database)

    async def render(self, accept: str | None) -> tuple[bytes, str]:
        if self.database is not None:
            await self.database.refresh()
        encoder, content_type = choose_encoder(accept or "")
        # Reading the shared files is blocking I/O: keep it off the event loop.
        return await anyio.to_thread.run_sync(encoder, self.registry), content_type
