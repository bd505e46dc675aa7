"""Which outbox topics become which webhook events, and the thin ``data`` each event carries.

Bodies follow the Standard Webhooks payload shape ``{"type", "timestamp", "data"}``. ``data`` is
built from an allow-list per event: ids, fiscal number, status, totals; never the buyer's details
(even when a future outbox payload carries more than today).
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from stalela.kit.clock import rfc3339

INVOICE_SEALED = "invoice.sealed"
INVOICE_ACKNOWLEDGED = "invoice.acknowledged"
INVOICE_SYNC_FAILED = "invoice.sync_failed"
REPORT_Z_CLOSED = "report.z_closed"
ENDPOINT_DISABLED = "endpoint.disabled"
WEBHOOK_TEST = "webhook.test"
BILLING_ANOMALY_DETECTED = "billing.anomaly_detected"  # the outbox topic has the event's name
OFFLINE_NUMBERS_VOIDED = "offline.numbers_voided"  # the outbox topic has the event's name
OFFLINE_FORK_DETECTED = "offline.fork_detected"  # the outbox topic has the event's name

# Event types an endpoint may filter on (``webhook.test`` always goes to the endpoint it was sent to).
EVENT_TYPES = (INVOICE_SEALED, INVOICE_ACKNOWLEDGED, INVOICE_SYNC_FAILED, REPORT_Z_CLOSED, ENDPOINT_DISABLED,
               BILLING_ANOMALY_DETECTED, OFFLINE_NUMBERS_VOIDED, OFFLINE_FORK_DETECTED)

# Outbox topic -> webhook event type. Our own topic for a disabled endpoint is namespaced like the
# other domains' topics; its event keeps the public name.
DISABLED_TOPIC = "webhook.endpoint_disabled"
DELIVER_TOPIC = "webhook.deliver"
TOPICS = {INVOICE_SEALED: INVOICE_SEALED, INVOICE_ACKNOWLEDGED: INVOICE_ACKNOWLEDGED,
          INVOICE_SYNC_FAILED: INVOICE_SYNC_FAILED, REPORT_Z_CLOSED: REPORT_Z_CLOSED,
          DISABLED_TOPIC: ENDPOINT_DISABLED, BILLING_ANOMALY_DETECTED: BILLING_ANOMALY_DETECTED,
          OFFLINE_NUMBERS_VOIDED: OFFLINE_NUMBERS_VOIDED, OFFLINE_FORK_DETECTED: OFFLINE_FORK_DETECTED}

_ALLOWED = {
    INVOICE_SEALED: ("invoice_id", "outlet_id", "fiscal_number", "type", "total", "issued_at"),
    INVOICE_ACKNOWLEDGED: ("invoice_id", "outlet_id", "fiscal_number", "status", "authority_code", "counters",
                           "cae_due", "after_rejection"),
    INVOICE_SYNC_FAILED: ("invoice_id", "outlet_id", "fiscal_number", "status", "code"),
    ENDPOINT_DISABLED: ("endpoint_id", "reason", "failing_since", "disabled_at"),
    WEBHOOK_TEST: ("endpoint_id", "message"),
    BILLING_ANOMALY_DETECTED: ("anomaly_id", "resource", "day", "observed", "baseline", "score", "impact_eur", "status"),
    OFFLINE_NUMBERS_VOIDED: ("block_id", "outlet_id", "device_id", "credential", "first", "last", "fiscal_numbers",
                             "reason", "event_id", "record_hash", "voided_at"),
    OFFLINE_FORK_DETECTED: ("tenant_id", "credential", "block_id", "device_id", "outlet_id", "counter", "fork_proof_id",
                            "code", "detected_at"),
}
# The Z report's outbox payload is the reports domain's; a thin summary keeps these of its fields
# (not who closed the day).
_REPORT_KEYS = frozenset({
    "z_report_id", "outlet_id", "business_day", "z_counter", "number", "invoices", "total", "currency",
    "closed_at", "seal_hash",
})
_STATUS = {INVOICE_ACKNOWLEDGED: "acknowledged", INVOICE_SYNC_FAILED: "failed"}


def needs_invoice(event_type: str) -> bool:
    """The authority's events name only the invoice: the receiver also gets its number and outlet."""
    return event_type in _STATUS


def thin_data(event_type: str, payload: dict[str, Any], invoice: dict[str, Any] | None = None) -> dict[str, Any]:
    source = {**(invoice or {}), **payload}
    if event_type in _STATUS:
        # ARCA's refusal says "rejected" (Resultado R); the DGI's outcomes keep "failed".
        source["status"] = "rejected" if payload.get("status") == "rejected" else _STATUS[event_type]
    if event_type == REPORT_Z_CLOSED:
        return {k: v for k, v in payload.items() if k in _REPORT_KEYS}
    return {k: source[k] for k in _ALLOWED[event_type] if k in source}


def event_time(event_id: str) -> datetime:
    """When the event happened: our ids are ULIDs, whose first 48 bits are the creation time in ms."""
    body = event_id.partition("_")[2][:10]
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    millis = 0
    for char in body:
        millis = millis * 32 + alphabet.index(char)
    return datetime.fromtimestamp(millis / 1000, tz=timezone.utc)


def render(event_type: str, event_id: str, data: dict[str, Any]) -> str:
    """The exact body: fixed once per message, so every retry sends (and signs) the same bytes."""
    return json.dumps({"type": event_type, "timestamp": rfc3339(event_time(event_id)), "data": data},
                      separators=(",", ":"), default=str)
