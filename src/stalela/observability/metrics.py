"""Prometheus metrics: every series Stalela exports, and the small helpers that feed them.

Process-maintained metrics (counters, histograms) live in prometheus-client's default registry. In
``stalela serve`` that registry runs in multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` is set (and
wiped) by the CLI before any worker starts, every uvicorn worker writes its values to memory-mapped
files there, and whichever worker answers ``/metrics`` sums them all. State that already lives in the
database (outbox backlog, tenants, counters) is not maintained by any process: ``scrape.py`` reads it
at scrape time, with a short cache.

Label values are bounded: ``endpoint`` is the route template, tenant and outlet ids are those of
authenticated callers (or ``STALELA_METRICS_TENANT_LABELS=false`` folds them into one), and no label
ever carries an invoice id or anything a client typed freely.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

from prometheus_client import Counter, Gauge, Histogram, values
from sqlalchemy import event
from sqlalchemy.orm import Session

from stalela.observability import tracing

# 1 ms .. 5 s (and a little beyond), for HTTP requests and whole handler runs.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# The seal's stages are sub-millisecond to a few ms (a software signature is ~40 us).
STAGE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
# From seal to the authority's acknowledgement: seconds to days when the DGI is unreachable.
SYNC_LAG_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600)

API_REQUESTS = Counter(
    "api_requests", "HTTP requests answered, by route template and status.",
    ["method", "endpoint", "status", "tenant_id"])
API_DURATION = Histogram(
    "api_request_duration_seconds", "Time from the first byte in to the last byte out, by route template.",
    ["method", "endpoint"], buckets=LATENCY_BUCKETS)

INVOICES_SEALED = Counter(
    "invoices_sealed", "Invoices sealed and committed.", ["tenant_id", "outlet_id", "type"])
SEAL_DURATION = Histogram(
    "seal_duration_seconds", "Time spent in each stage of a successful seal (validate, number, sign, store).",
    ["stage"], buckets=STAGE_BUCKETS)

SEAL_GROUP_SIZE = Histogram(
    "seal_group_size", "Invoices sealed per transaction (group commit, batches); 1 when nothing is grouped.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000))

SEALS_ROUTED = Counter(
    "seals_routed", "Seal requests (singles and batches) made in an API process that does not own their "
    "tenant, by outcome: handed_over (sealed by the owner), sealed_here (the owner was stopping or gone), "
    "owner_lost (the owner went away while sealing it).", ["outcome"])

OUTBOX_HANDLED = Counter(
    "outbox_handled", "Outbox handler runs by topic, handler and outcome (ok, retry_later, error).",
    ["topic", "handler", "result"])
OUTBOX_HANDLER_DURATION = Histogram(
    "outbox_handler_duration_seconds", "Duration of one outbox handler run.", ["topic", "handler"],
    buckets=LATENCY_BUCKETS)
OUTBOX_DEAD = Counter(
    "outbox_dead", "Events that exhausted their attempts and became dead letters.", ["topic"])

# The MCP server (assistants): every tools/call by tool and outcome (ok, or the error's stable code).
MCP_TOOL_CALLS = Counter(
    "mcp_tool_calls", "MCP tools/call answered, by tool and outcome (ok or the error's stable code).",
    ["tool", "outcome"])
MCP_TOOL_DURATION = Histogram(
    "mcp_tool_duration_seconds", "Time an MCP tool's body took, by tool.", ["tool"], buckets=LATENCY_BUCKETS)

AUTHORITY_REQUESTS = Counter(
    "authority_requests", "Requests to the tax authority (DGI e-MCF) by operation and result.",
    ["operation", "result"])
AUTHORITY_REQUEST_DURATION = Histogram(
    "authority_request_duration_seconds", "Duration of one request to the tax authority.", ["operation"],
    buckets=LATENCY_BUCKETS)
AUTHORITY_SYNC_LAG = Histogram(
    "authority_sync_lag_seconds", "From an invoice's seal to the authority's acknowledgement.",
    buckets=SYNC_LAG_BUCKETS)

WEBHOOK_DELIVERIES = Counter(
    "webhook_deliveries", "Webhook delivery attempts by result (ok, http_4xx, http_5xx, timeout, error).",
    ["result"])
WEBHOOK_DURATION = Histogram(
    "webhook_delivery_duration_seconds", "Duration of one webhook delivery attempt.", buckets=LATENCY_BUCKETS)

# From the request's text to the stored draft: the rule parser is ~1 ms, an LLM provider up to its timeout (5 s).
DRAFT_DURATION = Histogram(
    "invoice_draft_duration_seconds", "Drafting an invoice from text (POST /v1/invoice-drafts), by the provider "
    "asked (rules, llm) and outcome (accepted, refused, fallback: the LLM failed and the rules answered).",
    ["provider", "outcome"], buckets=LATENCY_BUCKETS)

SIGNER_OPERATIONS = Counter(
    "signer_operations", "Signatures asked of the key backend, by backend and result.", ["backend", "result"])

PRIVACY_REQUESTS = Counter(
    "privacy_requests", "Privacy requests by type (erasure, export, offboarding) and outcome (received, requested, "
    "completed, failed, downloaded, revoked, expired).", ["type", "outcome"])

# Registered now, fed by the billing issue (usage metering, cost anomaly detection).
TENANT_RESOURCE_USAGE = Gauge(
    "tenant_resource_usage", "Resource use of a tenant in the current billing period.", ["tenant_id", "resource"],
    multiprocess_mode="mostrecent")
COST_ANOMALIES = Counter("cost_anomalies", "Cost anomalies detected by billing, counted once per stored anomaly.",
                         ["tenant_id", "resource"])

# Per process (``liveall``: one series per live pid): the fleet's pools shrink to nothing when idle.
DEDICATED_CONNECTIONS = Gauge(
    "dedicated_database_connections", "Connections this process holds to dedicated tenants' databases (checked "
    "out or pooled).", multiprocess_mode="liveall")

PRIVACY_RETENTION_PURGED = Counter(
    "privacy_retention_purged", "Rows the retention engine deleted (past their rule and grace), by data map category.",
    ["category"])

# Computed at scrape time from the database (see scrape.py); listed here so that one place names
# every series (the docs table and the dashboard test read it).
DATABASE_GAUGES = {
    "outbox_pending": ("Outbox events waiting for delivery (including those backing off).", ["topic"]),
    "outbox_oldest_pending_seconds": ("Age of the oldest pending outbox event.", ["topic"]),
    "outbox_dead_letters": ("Dead outbox events right now (replay brings them back).", ["topic"]),
    "tenant_count": ("Tenants by status.", ["status"]),
    "fiscal_counter_value": ("Last fiscal counter handed out, per outlet.", ["tenant_id", "outlet_id"]),
    "authority_sync_pending": ("Sealed invoices not yet acknowledged by the authority, by sync status.", ["status"]),
    "authority_sync_oldest_pending_seconds": ("Age of the oldest invoice still waiting for the authority.", []),
    "privacy_oldest_open_request_seconds": ("Age of the oldest open privacy request (GDPR: one month to answer).", []),
    "metrics_scrape_errors": ("1 when the last database read for these gauges failed.", []),
}

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_tenant_labels = True


def configure(*, tenant_labels: bool = True) -> None:
    global _tenant_labels
    _tenant_labels = tenant_labels


@lru_cache(maxsize=1024)
def _child(metric: Any, *labels: str) -> Any:
    """Label lookups cost microseconds; the label sets used on hot paths are few and fixed."""
    return metric.labels(*labels)


def tenant_label(value: str | None) -> str:
    if not value:
        return ""
    return value if _tenant_labels else "*"


def multiprocess_dir() -> str | None:
    """The shared directory when this process writes its values there, else None."""
    if values.ValueClass is values.MutexValue:
        return None
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")


def mark_process_dead() -> None:
    """A process that ends removes its live gauges from the shared directory (counters stay summed)."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())


@lru_cache(maxsize=8192)
def _request_children(method: str, endpoint: str, status: int, tenant: str) -> tuple[Any, Any]:
    return API_REQUESTS.labels(method, endpoint, str(status), tenant), API_DURATION.labels(method, endpoint)


def observe_request(method: str, endpoint: str, status: int, tenant_id: str | None, seconds: float) -> None:
    method = method if method in _METHODS else "OTHER"
    count, duration = _request_children(method, endpoint, status, tenant_label(tenant_id))
    count.inc()
    duration.observe(seconds)


# --- after commit -------------------------------------------------------------------------------
# A seal is counted when its transaction commits, not when it is flushed: the request may still roll
# back. Callbacks queued on a session run after its commit and are dropped on rollback.

_PENDING = "stalela_after_commit"


def after_commit(session: Any, callback: Callable[[], None]) -> None:
    """Run ``callback`` once ``session`` (sync or async) commits; forget it if it rolls back."""
    session.info.setdefault(_PENDING, []).append(callback)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    for callback in session.info.pop(_PENDING, ()):
        try:
            callback()
        except Exception:  # a metric must never break a committed request
            pass


@event.listens_for(Session, "after_rollback")
def _drop_after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


def invoice_sealed(session: Any, tenant_id: str, outlet_id: str, type_: str) -> None:
    after_commit(session, _child(INVOICES_SEALED, tenant_label(tenant_id), tenant_label(outlet_id), type_).inc)


def privacy_request(session: Any, type_: str, outcome: str) -> None:
    """Count a privacy request's step once ``session`` commits."""
    after_commit(session, _child(PRIVACY_REQUESTS, type_, outcome).inc)


def retention_purged(session: Any, category: str, count: int) -> None:
    if count:
        after_commit(session, lambda: _child(PRIVACY_RETENTION_PURGED, category).inc(count))


def sync_acknowledged(session: Any, sealed_at: Any, acknowledged_at: Any) -> None:
    lag = max(0.0, (acknowledged_at - sealed_at).total_seconds())
    after_commit(session, lambda: AUTHORITY_SYNC_LAG.observe(lag))


# --- seal stages ----------------------------------------------------------------------------------


class SealClock:
    """Laps of the seal pipeline: ``lap("validate")`` records the time since the previous lap.

    A lap is one ``seal_duration_seconds{stage}`` observation per invoice that went through the stage
    (``count``: a group commit seals many at once, and each of them spent that time in the stage)
    and, when tracing is on, one span ``seal.<stage>`` with the lap's real start and end times.
    """

    __slots__ = ("_last", "_last_ns", "_parents")

    def __init__(self, parents: list[Any] | None = None) -> None:
        self._last = time.perf_counter()
        self._last_ns = time.time_ns() if tracing.enabled() else 0
        # The requests' trace contexts when the seal runs in another task (a group commit's leader):
        # each request gets the stage spans as its own children.
        self._parents = parents or [None]

    def lap(self, stage: str, count: int = 1) -> None:
        now = time.perf_counter()
        _observe_many(_child(SEAL_DURATION, stage), now - self._last, count)
        self._last = now
        if tracing.enabled():
            now_ns = time.time_ns()
            for parent in self._parents:
                tracing.record_span(f"seal.{stage}", self._last_ns, now_ns, {"stalela.seal.stage": stage}, parent)
            self._last_ns = now_ns


def _observe_many(histogram: Any, amount: float, count: int) -> None:
    """``count`` observations of ``amount``: the sum and the bucket written once each, not ``count``
    times (in multiprocess mode every write is a locked write to a memory-mapped file, and a group of
    a hundred invoices made four hundred per stage). prometheus-client has no call for it: its
    histogram's parts are used when they are there, else it observes one by one."""
    parts = getattr(histogram, "_sum", None), getattr(histogram, "_buckets", None), getattr(histogram, "_upper_bounds", None)
    if count <= 1 or None in parts:
        for _ in range(count):
            histogram.observe(amount)
        return
    total, buckets, bounds = parts
    total.inc(amount * count)
    for bucket, bound in zip(buckets, bounds):
        if amount <= bound:  # like Histogram.observe: the first bucket that holds it (counts are cumulated on export)
            bucket.inc(count)
            break


def seal_group(session: Any, size: int) -> None:
    if size:
        after_commit(session, lambda: SEAL_GROUP_SIZE.observe(size))


def seal_routed(outcome: str) -> None:
    SEALS_ROUTED.labels(outcome).inc()


def seal_clock(parents: list[Any] | None = None) -> SealClock:
    return SealClock(parents)


# --- signer ---------------------------------------------------------------------------------------


def signer_operations(backend: str, ok: int, error: int = 0) -> None:
    """Count a run of signatures at its end: one write per result, not one per signature (a seal group
    signs a hundred at once)."""
    if ok:
        _child(SIGNER_OPERATIONS, backend, "ok").inc(ok)
    if error:
        _child(SIGNER_OPERATIONS, backend, "error").inc(error)


# --- outbound HTTP (authority, webhooks) ------------------------------------------------------------


class OutboundCall:
    """Set ``status`` once the remote answered (or ``error`` when it did not); an exception that
    escapes the block counts as unreachable."""

    __slots__ = ("status", "error")

    def __init__(self) -> None:
        self.status: int | None = None
        self.error: str | None = None

    def done(self, status: int | None, error: str | None = None) -> None:
        self.status, self.error = status, error


def safe_url(url: str) -> str:
    """Scheme, host and path only: query strings and user info may carry credentials."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _authority_operation(method: str, path: str) -> str:
    if path.startswith("arca:"):  # ARCA's SOAP operations name themselves (a handful: bounded labels)
        return path[5:]
    if path.endswith("/confirm"):
        return "confirm"
    if path.endswith("/cancel"):
        return "cancel"
    if "/status" in path:
        return "status"
    if method == "POST":
        return "create"
    return "other"


def _authority_result(status: int | None, exc: BaseException | None) -> str:
    if exc is not None:
        name = type(exc).__name__.lower()
        return "timeout" if "timeout" in name else "unreachable"
    if status is None:
        return "error"
    if status == 401:
        return "unauthorized"
    if status == 429:
        return "too_many_pending"
    if status >= 500:
        return "server_error"
    if status >= 400:
        return "rejected"
    return "ok"


@contextmanager
def authority_request(method: str, url: str, path: str) -> Iterator[OutboundCall]:
    """Time, count and trace one request to the tax authority (never its headers: they hold the token)."""
    operation = _authority_operation(method, path)
    call = OutboundCall()
    started = time.perf_counter()
    error: BaseException | None = None
    with tracing.span(f"authority.{operation}", kind="client",
                      attributes={"http.request.method": method, "url.full": safe_url(url),
                                  "stalela.authority.operation": operation}) as span:
        try:
            yield call
        except BaseException as exc:
            error = exc
            raise
        finally:
            _child(AUTHORITY_REQUEST_DURATION, operation).observe(time.perf_counter() - started)
            _child(AUTHORITY_REQUESTS, operation, _authority_result(call.status, error)).inc()
            if call.status is not None:
                span.set_attribute("http.response.status_code", call.status)


def webhook_result(status: int | None, exc: BaseException | None = None, error: str | None = None) -> str:
    if exc is not None:
        return "timeout" if "timeout" in type(exc).__name__.lower() else "error"
    if status is None:
        return "timeout" if error and "timeout" in error.lower() else "error"
    if 200 <= status < 300:
        return "ok"
    return "http_4xx" if status < 500 else "http_5xx"


@contextmanager
def webhook_delivery(url: str) -> Iterator[OutboundCall]:
    """For the webhooks domain: ``with webhook_delivery(url) as call: ...; call.done(response.status_code)``."""
    call = OutboundCall()
    started = time.perf_counter()
    error: BaseException | None = None
    with tracing.span("webhook.deliver", kind="client",
                      attributes={"http.request.method": "POST", "url.full": safe_url(url)}) as span:
        try:
            yield call
        except BaseException as exc:
            error = exc
            raise
        finally:
            WEBHOOK_DURATION.observe(time.perf_counter() - started)
            _child(WEBHOOK_DELIVERIES, webhook_result(call.status, error, call.error)).inc()
            if call.status is not None:
                span.set_attribute("http.response.status_code", call.status)


# --- outbox handlers --------------------------------------------------------------------------------


async def run_handler(handler: Callable[..., Any], ctx: Any, event_: Any,
                      deferred: tuple[type[BaseException], ...] = ()) -> None:
    """Run one outbox handler inside a span, with its ids bound to the logs, timed and counted.

    ``deferred``: the exceptions by which a handler asks to be retried later (the outbox's
    ``RetryLater``), counted as ``retry_later`` rather than ``error``. The caller names them because
    observability knows no domain, the outbox included.
    """
    from stalela.observability import context

    payload = event_.payload if isinstance(event_.payload, dict) else {}
    name = handler_name(handler)
    started = time.perf_counter()
    result = "error"
    with tracing.span(f"outbox {event_.topic}", kind="consumer",
                      attributes={"messaging.system": "stalela.outbox", "messaging.destination.name": event_.topic,
                                  "messaging.message.id": event_.id, "stalela.tenant_id": event_.tenant_id,
                                  "stalela.outbox.attempt": event_.attempts,
                                  "code.function": name}):
        context.bind(tenant_id=event_.tenant_id, event_id=event_.id, topic=event_.topic,
                     invoice_id=payload.get("invoice_id"), outlet_id=payload.get("outlet_id"))
        try:
            await handler(ctx, event_)
            result = "ok"
        except deferred:
            result = "retry_later"
            raise
        finally:
            _child(OUTBOX_HANDLER_DURATION, event_.topic, name).observe(time.perf_counter() - started)
            _child(OUTBOX_HANDLED, event_.topic, name, result).inc()


def handler_name(handler: Callable[..., Any]) -> str:
    """``authority.tasks.sync_invoice``: bounded by the code, readable on a dashboard."""
    module = getattr(handler, "__module__", "") or ""
    module = module.removeprefix("stalela.")
    return f"{module}.{getattr(handler, '__qualname__', 'handler')}".lstrip(".")


def metric_names() -> dict[str, str]:
    """Every exported family name (as scraped: counters with ``_total``) mapped to its type."""
    out: dict[str, str] = {}
    for metric in (API_REQUESTS, API_DURATION, INVOICES_SEALED, SEAL_DURATION, SEAL_GROUP_SIZE, SEALS_ROUTED, OUTBOX_HANDLED,
                   OUTBOX_HANDLER_DURATION, OUTBOX_DEAD, AUTHORITY_REQUESTS, AUTHORITY_REQUEST_DURATION,
                   AUTHORITY_SYNC_LAG, WEBHOOK_DELIVERIES, WEBHOOK_DURATION, SIGNER_OPERATIONS,
                   PRIVACY_REQUESTS, TENANT_RESOURCE_USAGE, COST_ANOMALIES, PRIVACY_RETENTION_PURGED,
                   MCP_TOOL_CALLS, MCP_TOOL_DURATION, DRAFT_DURATION):
        kind = metric._type  # noqa: SLF001 - prometheus-client has no public accessor
        name = metric._name  # noqa: SLF001
        out[f"{name}_total" if kind == "counter" else name] = kind
    for name in DATABASE_GAUGES:
        out[name] = "gauge"
    return out


def cost_anomaly(session: Any, tenant_id: str, resource: str) -> None:
    """Count a newly stored anomaly once ``session`` commits (a re-run stores, and so counts, nothing)."""
    after_commit(session, _child(COST_ANOMALIES, tenant_label(tenant_id), resource).inc)
