"""What one scrape answers: the process metrics (summed over every worker's shared files in
multiprocess mode) plus gauges read from the database at scrape time, cached for a few seconds.

Reading state from the database instead of maintaining gauges in every process keeps them right
whatever number of processes (API workers, `stalela worker`s, hosts) changes it, and costs a few
aggregate queries per scrape instead of work on every seal.

Observability knows no domain: each domain that has such a figure (outbox depth, sync lag, counters)
registers a source with ``@scrape_figures`` in its ``gauges.py``, and the app factory imports those
modules. The gauges' names and help texts stay in ``metrics.DATABASE_GAUGES``, one catalog.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable

import anyio
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from stalela.observability import metrics
from stalela.observability.logging import get_logger

log = get_logger("stalela.metrics")


class _Delegate:
    """Exposes the default registry (single-process mode) through the scrape registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        return self.registry.collect()


@dataclass
class ScrapeContext:
    """What a figure source gets: the database (``stalela.db.session.Database``), whether per-tenant
    labels are wanted, and a dict of its own that lives as long as the exporter."""

    db: Any
    tenant_labels: bool
    memory: dict[str, Any] = field(default_factory=dict)


FigureSource = Callable[[ScrapeContext], Awaitable[Iterable[Metric]]]
_sources: list[FigureSource] = []


def scrape_figures(source: FigureSource) -> FigureSource:
    """Register a domain's scrape-time figures; each source reads in its own short transaction."""
    if source not in _sources:
        _sources.append(source)
    return source


def database_gauge(name: str) -> GaugeMetricFamily:
    """An empty family of one of the catalogued ``metrics.DATABASE_GAUGES``."""
    doc, labels = metrics.DATABASE_GAUGES[name]
    return GaugeMetricFamily(name, doc, labels=labels)


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
        self._contexts: dict[FigureSource, ScrapeContext] = {}

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
        families: list[Metric] = []
        for source in list(_sources):
            context = self._contexts.setdefault(source, ScrapeContext(self.db, self.tenant_labels))
            families.extend(await source(context))
        return families

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
