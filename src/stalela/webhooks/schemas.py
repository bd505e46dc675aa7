from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, StrictBool, field_validator

from stalela.kit.schemas import Rfc3339DateTime, StrictModel

EventType = Literal["invoice.sealed", "invoice.acknowledged", "invoice.sync_failed", "report.z_closed",
                    "endpoint.disabled", "billing.anomaly_detected", "offline.numbers_voided",
                    "offline.fork_detected"]


def _unique(value: list[str] | None) -> list[str] | None:
    if value is not None and len(set(value)) != len(value):
        raise ValueError("event types must not repeat")
    return value


class EndpointCreate(StrictModel):
    url: str = Field(min_length=1, max_length=2000, description="https:// URL that receives the POSTs.")
    description: str | None = Field(None, max_length=500)
    event_types: list[EventType] | None = Field(
        None, min_length=1, description="Only these events; omitted or null: every event.")
    # Strict: 0 or "yes" is a client's bug, not a choice (a JSON boolean or nothing).
    enabled: StrictBool = True

    _event_types = field_validator("event_types")(_unique)


class EndpointUpdate(StrictModel):
    url: str | None = Field(None, min_length=1, max_length=2000)
    description: str | None = Field(None, max_length=500)
    event_types: list[EventType] | None = Field(None, min_length=1, description="null: every event.")
    enabled: StrictBool | None = None

    _event_types = field_validator("event_types")(_unique)


class SecretRotate(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"grace_seconds": 86400}]})
    grace_seconds: int | None = Field(
        None, ge=0, le=7 * 86400, strict=True,
        description="How long the previous secret keeps signing alongside the new one (default 24 h).")


class RecoverRequest(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"since": "2026-12-06T00:00:00Z", "until": "2026-12-07T00:00:00Z"},
    ]})
    since: Rfc3339DateTime = Field(description="Re-send failed messages created at or after this time...")
    until: Rfc3339DateTime | None = Field(None, description="...and before this one (default: now).")


class _Out(StrictModel):
    model_config = ConfigDict(from_attributes=True, extra="forbid")


class EndpointOut(_Out):
    id: str
    url: str
    description: str | None
    event_types: list[str] | None
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    previous_secret_expires_at: datetime | None = Field(
        description="While set and in the future, deliveries carry a second signature made with the previous secret.")
    created_at: datetime
    updated_at: datetime

    @field_validator("event_types", mode="before")
    @classmethod
    def _decode(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value


class EndpointCreated(EndpointOut):
    secret: str = Field(description="The signing secret (whsec_...), shown exactly once.")


class SecretRotated(StrictModel):
    secret: str = Field(description="The new signing secret, shown exactly once.")
    previous_secret_expires_at: datetime | None


class MessageOut(_Out):
    id: str = Field(description="The webhook-id header: the same on every retry.")
    endpoint_id: str
    event_id: str
    event_type: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any]

    @field_validator("payload", mode="before")
    @classmethod
    def _decode(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value


class AttemptOut(_Out):
    id: str
    message_id: str
    attempt: int
    started_at: datetime
    outcome: Literal["succeeded", "failed", "interrupted"]
    status_code: int | None
    latency_ms: int | None
    error: str | None
    response_body: str | None = Field(description="The start of the receiver's answer (at most 1 KiB).")


class Recovered(StrictModel):
    recovered: int
    has_more: bool = Field(description="More failed messages remain in the window: call again.")
