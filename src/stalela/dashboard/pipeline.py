"""Pipeline rates for the operations console, read from the service's own Prometheus metrics.

Counters only ever grow, so a rate needs two readings. Every look at the pipeline page keeps a
sample (at most one per few seconds, a bounded history per process); rates compare the newest
with the oldest sample of the last five minutes, or with zero at start-up when there is none yet,
and the page says over which span. p95 is interpolated inside the latency histogram's buckets, as
PromQL's ``histogram_quantile`` does.
"""
from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import anyio

SEAL_ROUTE = ("POST", "/v1/invoices")
WINDOW_SECONDS = 300.0
MIN_GAP_SECONDS = 5.0
_STARTED = time.monotonic()


@dataclass
class Sample:
    at: float
    sealed: float = 0.0
    requests: float = 0.0
    errors: float = 0.0
    seal_buckets: dict[float, float] = field(default_factory=dict)


@dataclass
class Rates:
    span_seconds: float
    seals_per_minute: float
    requests: int
    errors: int
    error_rate: float | None
    seal_p95_ms: float | None
    sealed_total: int
    trend: list[float]


_history: deque[Sample] = deque(maxlen=120)


def read(registry: Any) -> Sample:
    sample = Sample(at=time.monotonic())
    for family in registry.collect():
        for s in family.samples:
            if s.name == "invoices_sealed_total":
                sample.sealed += s.value
            elif s.name == "api_requests_total":
                sample.requests += s.value
                if str(s.labels.get("status", "")).startswith("5"):
                    sample.errors += s.value
            elif (s.name == "api_request_duration_seconds_bucket"
                  and (s.labels.get("method"), s.labels.get("endpoint")) == SEAL_ROUTE):
                le = float(s.labels["le"])
                sample.seal_buckets[le] = sample.seal_buckets.get(le, 0.0) + s.value
    return sample


def p95(buckets: dict[float, float]) -> float | None:
    """Seconds; ``buckets`` are cumulative counts by upper bound (+Inf included)."""
    if not buckets:
        return None
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = 0.95 * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower  # beyond the last finite bucket: its bound is all that is known
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = bound, count
    return None


def rates(current: Sample, history: deque[Sample] | None = None) -> Rates:
    history = _history if history is None else history
    if not history or current.at - history[-1].at >= MIN_GAP_SECONDS:
        history.append(current)
    base = next((s for s in history if current.at - s.at <= WINDOW_SECONDS and current.at - s.at >= MIN_GAP_SECONDS),
                None)
    if base is None:  # nothing old enough: everything since this process started
        base = Sample(at=_STARTED)
    span = max(current.at - base.at, 1e-6)
    requests, errors = current.requests - base.requests, current.errors - base.errors
    delta = {le: c - base.seal_buckets.get(le, 0.0) for le, c in current.seal_buckets.items()}
    latency = p95(delta)
    recent = [s for s in history if current.at - s.at <= WINDOW_SECONDS]
    pairs = zip(recent, recent[1:], strict=False)
    trend = [max(b.sealed - a.sealed, 0) / max(b.at - a.at, 1e-6) * 60 for a, b in pairs]
    return Rates(span_seconds=span, seals_per_minute=(current.sealed - base.sealed) / span * 60,
                 requests=int(requests), errors=int(errors), error_rate=(errors / requests) if requests else None,
                 seal_p95_ms=latency * 1000 if latency is not None else None, sealed_total=int(current.sealed),
                 trend=trend)


async def pipeline_rates(app: Any) -> Rates:
    from stalela.observability.endpoints import exporter

    registry = exporter(app).registry
    # Reading the multiprocess files is blocking I/O.
    current = await anyio.to_thread.run_sync(read, registry)
    return rates(current)
