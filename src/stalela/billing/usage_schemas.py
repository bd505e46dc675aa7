"""API models of usage: events, batches, voids, the event export and the daily aggregates."""
from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, field_validator

from stalela.kit import canonical
from stalela.kit.schemas import Rfc3339DateTime, StrictModel

# ASCII without spaces, slashes, '?', '#' or '%': an event id travels in a URL path (its void) and sorts
# the same everywhere (the digests sort ids by code point).
EVENT_ID_PATTERN = r"^[A-Za-z0-9._:~@+=-]{1,255}$"
MAX_BATCH = 1000
MAX_PROPERTIES_BYTES = 4096


def _quantity_text(value: Any) -> Any:
    # A JSON integer is exact and accepted as its digits; a JSON float is not exact, and never a quantity.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise ValueError('the quantity is a decimal string, e.g. "12.5"')
    return value


QuantityText = Annotated[str, BeforeValidator(_quantity_text)]


class UsageEventIn(StrictModel):
    event_id: str = Field(min_length=1, max_length=255, pattern=EVENT_ID_PATTERN,
                          description="Your id for the event: recording it again is answered with the original.")
    resource: str = Field(min_length=1, max_length=64, description="A resource of the registry, e.g. api_calls.")
    quantity: QuantityText = Field(max_length=64, 
        description="A non-negative decimal string (or integer) with at most the resource's decimal places.")
    occurred_at: Rfc3339DateTime = Field(description="When it happened: within the last 35 days and at most 5 "
                                                     "minutes ahead of the server's clock.")
    properties: dict[str, Any] | None = Field(None, description="Free JSON object (at most 4 KiB), kept as sent.")

    @field_validator("properties")
    @classmethod
    def _bounded(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        try:
            size = len(canonical.dumps(value))
        except (ValueError, TypeError, RecursionError):
            raise ValueError("properties must be JSON that can be canonicalised (RFC 8785)") from None
        if size > MAX_PROPERTIES_BYTES:
            raise ValueError(f"properties take at most {MAX_PROPERTIES_BYTES} bytes as canonical JSON")
        return value


class UsageBatchIn(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"events": [{"event_id": "calls-2026-11-20", "resource": "api_calls", "quantity": "250000", "occurred_at": "2026-11-20T23:59:00Z"}, {"event_id": "job-43", "resource": "cpu_seconds", "quantity": "3.250", "occurred_at": "2026-11-21T02:00:00Z", "properties": {"job": "nightly-export"}}]},
    ]})
    events: list[dict[str, Any]] = Field(
        min_length=1, max_length=MAX_BATCH,
        description="Up to 1,000 events, each shaped like the single event's body; each is answered on its own.")


class VoidIn(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "sent twice"}]})
    reason: str | None = Field(None, max_length=500)


class UsageEventOut(StrictModel):
    id: str
    event_id: str
    resource: str
    quantity: str
    occurred_at: datetime
    received_at: datetime
    properties: dict[str, Any] | None
    source: Literal["api", "metering"]


class RecordedOut(UsageEventOut):
    duplicate: bool = Field(description="True when this event id was recorded before: the original is answered.")


class BatchItemOut(StrictModel):
    index: int
    status: int = Field(description="201 recorded, 200 duplicate, 409 conflict, 422 invalid.")
    duplicate: bool | None = None
    event: UsageEventOut | None = None
    problem: dict[str, Any] | None = Field(None, description="The item's RFC 9457 problem, when status >= 400.")


class BatchOut(StrictModel):
    data: list[BatchItemOut]


class VoidOut(StrictModel):
    event_id: str
    resource: str
    quantity: str = Field(description="The compensating quantity: minus the event's.")
    occurred_at: datetime
    voided_at: datetime
    reason: str | None
    duplicate: bool


class ListedEventOut(UsageEventOut):
    voided_at: datetime | None


class EventPage(StrictModel):
    data: list[ListedEventOut]
    has_more: bool


class DailyOut(StrictModel):
    day: date
    resource: str
    quantity: str


class DailyPage(StrictModel):
    data: list[DailyOut]
