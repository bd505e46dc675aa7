"""Wiring: what each process does at start and at exit for logs, metrics and traces.

- ``stalela serve`` calls ``multiproc.prepare_multiprocess_dir`` before anything imports prometheus-client,
  so every uvicorn worker it spawns shares (and sums through) one freshly emptied directory.
- ``create_app`` calls ``configure``; its lifespan enters ``app_lifespan`` (internal metrics
  listener, and at exit: mark the process dead in the shared directory, flush traces).
- ``stalela worker`` calls ``configure``, and ``stalela.workers.run_worker`` enters ``worker_lifespan``:
  its metrics are its own (no shared directory), on ``STALELA_WORKER_METRICS_PORT`` when set. (The
  worker face calls in here, never the reverse: nothing below the faces imports a face.) Started by
  ``stalela serve`` (``--background``), it keeps serve's directory instead and opens no port; the
  master marks it dead when it ends (``multiproc.forget_process``).
"""
from __future__ import annotations

import gc
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from stalela import __version__
from stalela.observability import metrics, tracing
from stalela.observability.logging import configure_logging, get_logger, register_secrets

log = get_logger("stalela.observability")


def secrets_of(settings: Any) -> list[str]:
    out = []
    for name in ("operator_token", "metrics_token", "master_key", "pkcs11_pin"):
        value = getattr(settings, name, None)
        if value is not None:
            out.append(value.get_secret_value() if hasattr(value, "get_secret_value") else str(value))
    return out


def configure_logs(settings: Any) -> None:
    configure_logging(settings.log_level, settings.log_format)
    register_secrets(secrets_of(settings))


def settle_heap() -> None:
    """A sealing process, once started: everything built at start-up (modules, mappers, compiled
    statements) lives as long as the process, so it is kept out of the garbage collector's full passes,
    whose pauses otherwise show as the tail of the seal latency; and a seal allocates thousands of
    short-lived objects, so the young generation is collected every 20,000 allocations, not 700."""
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    gc.enable()


def configure(settings: Any) -> None:
    """Logs, metric labels and (when asked for by OTEL_* variables) traces for this process."""
    configure_logs(settings)
    metrics.configure(tenant_labels=settings.metrics_tenant_labels)
    tracing.configure_tracing(__version__)


@asynccontextmanager
async def app_lifespan(app: Any, settings: Any) -> AsyncIterator[None]:
    from stalela.observability.endpoints import InternalListener, exporter

    listener = None
    if settings.metrics_port:
        token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
        listener = InternalListener(exporter(app), settings.metrics_host, settings.metrics_port, token)
        try:
            await listener.start()
        except OSError as exc:
            log.error("metrics_listener_unavailable", port=settings.metrics_port, error=str(exc))
            listener = None
    try:
        yield
    finally:
        if listener is not None:
            await listener.stop()
        metrics.mark_process_dead()
        tracing.shutdown_tracing()


@asynccontextmanager
async def worker_lifespan(settings: Any) -> AsyncIterator[None]:
    from stalela.observability.endpoints import InternalListener
    from stalela.observability.scrape import Exporter

    listener = None
    if settings.worker_metrics_port:
        token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
        listener = InternalListener(Exporter(None), settings.metrics_host, settings.worker_metrics_port, token,
                                    reuse_port=False)
        await listener.start()  # a worker told to expose metrics and unable to is a deployment error
    try:
        yield
    finally:
        if listener is not None:
            await listener.stop()
        tracing.shutdown_tracing()

