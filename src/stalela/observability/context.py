"""Correlation ids: bound once where they become known, then on every log line and on the span.

Only identifiers go here (tenant, outlet, invoice, event ids): never names, tax ids or amounts.
"""
from __future__ import annotations

import structlog

from stalela.observability import tracing

ALLOWED = frozenset({"tenant_id", "outlet_id", "invoice_id", "event_id", "topic", "job_id", "report_id",
                     "webhook_id", "delivery_id"})


def bind(**ids: str | None) -> None:
    """Bind the given ids (``None`` values are skipped) to the current context's logs and span."""
    values = {k: v for k, v in ids.items() if v is not None}
    unknown = set(values) - ALLOWED
    if unknown:
        raise ValueError(f"not a correlation id: {sorted(unknown)}")
    if not values:
        return
    structlog.contextvars.bind_contextvars(**values)
    if tracing.enabled():
        tracing.set_current_attributes({f"stalela.{k}": v for k, v in values.items()})
