"""Webhook use cases: endpoints and their secrets, fan-out of events into messages, retry, recovery.

Services flush, never commit. Every message gets a ``webhook.deliver`` outbox event in the same
transaction that creates (or re-queues) it; ``delivery.py`` does the sending.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.audit.service import record
from stalela.auth.principal import Principal
from stalela.config import Settings
from stalela.errors import Conflict, NotFound, ValidationFailed
from stalela.kit import netguard
from stalela.kit.ids import new_id
from stalela.kit.secretbox import open_secret, seal_secret
from stalela.outbox.service import enqueue
from stalela.webhooks import clock, events, schemas, signing
from stalela.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage
from stalela.webhooks.repository import AttemptRepository, EndpointRepository, MessageRepository

RECOVER_BATCH = 10_000


def secret_context(tenant_id: str, endpoint_id: str) -> str:
    return f"webhook:{tenant_id}:{endpoint_id}"


def signing_secrets(settings: Settings, endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The current secret, plus the previous one while its grace period runs."""
    context = secret_context(endpoint.tenant_id, endpoint.id)
    out = [open_secret(settings, endpoint.secret_encrypted, context)]
    if endpoint.previous_secret_encrypted and endpoint.previous_secret_expires_at and \
            endpoint.previous_secret_expires_at > now:
        out.append(open_secret(settings, endpoint.previous_secret_encrypted, context))
    return out


# --- endpoints -----------------------------------------------------------------------------------


async def vet_url(settings: Settings, url: str) -> str:
    """The shared outbound-URL guard (at save time; delivery checks every connection again). The API
    calls it before the request's transaction starts (its DNS lookup must hold no lock or connection);
    the services then get the vetted URL back at once, and vet other callers' (dashboard) themselves."""
    return await netguard.vet_url(url, allow_private=settings.webhooks_allow_private, field="url",
                                  code_prefix="webhook_url", max_length=WebhookEndpoint.url.type.length)


@dataclass
class CreatedEndpoint:
    endpoint: WebhookEndpoint
    secret: str


async def create_endpoint(session: AsyncSession, settings: Settings, principal: Principal,
                          data: schemas.EndpointCreate) -> CreatedEndpoint:
    url = await vet_url(settings, data.url)
    now = clock.now()
    endpoint_id, secret = new_id("we"), signing.new_secret()
    endpoint = WebhookEndpoint(
        tenant_id=principal.tenant_id, id=endpoint_id, url=url, description=data.description,
        event_types=json.dumps(data.event_types) if data.event_types is not None else None,
        enabled=data.enabled, disabled_reason=None if data.enabled else "manual",
        disabled_at=None if data.enabled else now,
        secret_encrypted=seal_secret(settings, secret, secret_context(principal.tenant_id, endpoint_id)),
        created_at=now, updated_at=now)
    await EndpointRepository(session).add(endpoint)
    await record(session, principal.tenant_id, principal.actor, "webhook_endpoint.created", endpoint_id,
                 {"url": url, "event_types": data.event_types, "enabled": data.enabled})
    return CreatedEndpoint(endpoint, secret)


async def get_endpoint(session: AsyncSession, endpoint_id: str, *, lock: bool = False) -> WebhookEndpoint:
    endpoint = await EndpointRepository(session).live(endpoint_id, lock=lock)
    if endpoint is None:
        raise NotFound("no such webhook endpoint", code="webhook_endpoint_not_found")
    return endpoint


async def list_endpoints(session: AsyncSession, *, limit: int, starting_after: str | None):
    return await EndpointRepository(session).page_live(limit, starting_after)


async def update_endpoint(session: AsyncSession, settings: Settings, endpoint_id: str,
                          data: schemas.EndpointUpdate, actor: Principal) -> WebhookEndpoint:
    changes = data.model_dump(exclude_unset=True)
    for name in ("url", "enabled"):
        if name in changes and changes[name] is None:
            raise ValidationFailed(f"{name} cannot be null", code="field_not_nullable", field=name)
    url = await vet_url(settings, data.url) if "url" in changes else None  # its DNS lookup before the lock
    endpoint = await get_endpoint(session, endpoint_id, lock=True)
    now = clock.now()
    if url is not None:
        endpoint.url = url
    if "description" in changes:
        endpoint.description = changes["description"]
    if "event_types" in changes:
        endpoint.event_types = None if changes["event_types"] is None else json.dumps(changes["event_types"])
    if "enabled" in changes and changes["enabled"] != endpoint.enabled:
        endpoint.enabled = changes["enabled"]
        if endpoint.enabled:  # a fresh start: the 5-day failure clock restarts too
            endpoint.disabled_reason = endpoint.disabled_at = endpoint.failing_since = None
        else:
            endpoint.disabled_reason, endpoint.disabled_at = "manual", now
            await MessageRepository(session).fail_waiting(endpoint.id, "endpoint disabled", now)
    endpoint.updated_at = now
    await session.flush()
    await record(session, endpoint.tenant_id, actor.actor, "webhook_endpoint.updated", endpoint.id,
                 {k: v for k, v in changes.items() if k != "description"})
    return endpoint


async def delete_endpoint(session: AsyncSession, endpoint_id: str, actor: Principal) -> None:
    """Soft delete: the endpoint disappears from the API; its messages and attempts stay for the record."""
    endpoint = await get_endpoint(session, endpoint_id, lock=True)
    now = clock.now()
    endpoint.deleted_at, endpoint.enabled, endpoint.updated_at = now, False, now
    endpoint.disabled_reason = endpoint.disabled_reason or "deleted"
    endpoint.previous_secret_encrypted = endpoint.previous_secret_expires_at = None
    await MessageRepository(session).fail_waiting(endpoint.id, "endpoint deleted", now)
    await session.flush()
    await record(session, endpoint.tenant_id, actor.actor, "webhook_endpoint.deleted", endpoint.id)


async def rotate_secret(session: AsyncSession, settings: Settings, endpoint_id: str,
                        grace_seconds: int | None, actor: Principal) -> tuple[WebhookEndpoint, str]:
    """A new secret signs from now on; the current one keeps signing alongside it for the grace period.
    Rotating again within the period drops the oldest: at most two secrets sign at any time."""
    endpoint = await get_endpoint(session, endpoint_id, lock=True)
    now = clock.now()
    grace = settings.webhooks_secret_grace_seconds if grace_seconds is None else grace_seconds
    secret = signing.new_secret()
    context = secret_context(endpoint.tenant_id, endpoint.id)
    if grace > 0:
        endpoint.previous_secret_encrypted = endpoint.secret_encrypted
        endpoint.previous_secret_expires_at = now + timedelta(seconds=grace)
    else:
        endpoint.previous_secret_encrypted = endpoint.previous_secret_expires_at = None
    endpoint.secret_encrypted = seal_secret(settings, secret, context)
    endpoint.updated_at = now
    await session.flush()
    await record(session, endpoint.tenant_id, actor.actor, "webhook_endpoint.secret_rotated", endpoint.id,
                 {"grace_seconds": grace})
    return endpoint, secret


# --- messages ------------------------------------------------------------------------------------


def _queue(session: AsyncSession, tenant_id: str, message_ids: list[str], *, requeued: bool = False) -> None:
    payload = {"requeued": True} if requeued else {}
    for message_id in message_ids:
        enqueue(session, tenant_id, events.DELIVER_TOPIC, {"message_id": message_id, **payload})


def _message_row(tenant_id: str, endpoint_id: str, event_id: str, event_type: str, body: str,
                 now: datetime) -> dict[str, Any]:
    return dict(tenant_id=tenant_id, id=new_id("msg"), endpoint_id=endpoint_id, event_id=event_id,
                event_type=event_type, payload=body, status="pending", attempts=0, next_attempt_at=now,
                created_at=now, updated_at=now)


def subscribed(endpoint: WebhookEndpoint, event_type: str) -> bool:
    return endpoint.event_types is None or event_type in json.loads(endpoint.event_types)


async def fan_out(session: AsyncSession, tenant_id: str, event_id: str, topic: str,
                  payload: dict[str, Any]) -> list[str]:
    """One message per enabled endpoint that wants the event. Running again for the same event adds
    nothing (unique on endpoint and event), so the outbox may deliver the event any number of times."""
    event_type = events.TOPICS[topic]
    endpoints = [e for e in await EndpointRepository(session).enabled() if subscribed(e, event_type)]
    if not endpoints:
        return []
    invoice = None
    if events.needs_invoice(event_type) and payload.get("invoice_id"):
        invoice = await MessageRepository(session).invoice_summary(payload["invoice_id"])
    body = events.render(event_type, event_id, events.thin_data(event_type, payload, invoice))
    now = clock.now()
    rows = [_message_row(tenant_id, e.id, event_id, event_type, body, now) for e in endpoints]
    created = await MessageRepository(session).insert_new(rows)
    _queue(session, tenant_id, created)
    return created


async def send_test(session: AsyncSession, principal: Principal, endpoint_id: str) -> WebhookMessage:
    endpoint = await get_endpoint(session, endpoint_id)
    if not endpoint.enabled:
        raise Conflict("the endpoint is disabled; enable it first", code="webhook_endpoint_disabled")
    event_id = new_id("evt")
    body = events.render(events.WEBHOOK_TEST, event_id, events.thin_data(events.WEBHOOK_TEST, {
        "endpoint_id": endpoint.id, "message": "This is a test event from Stalela."}))
    message = WebhookMessage(**_message_row(principal.tenant_id, endpoint.id, event_id, events.WEBHOOK_TEST, body,
                                            clock.now()))
    await MessageRepository(session).add(message)
    _queue(session, principal.tenant_id, [message.id])
    return message


async def list_messages(session: AsyncSession, endpoint_id: str, status: str | None, event_type: str | None, *,
                        limit: int, starting_after: str | None):
    await get_endpoint(session, endpoint_id)
    return await MessageRepository(session).page_of_endpoint(endpoint_id, status, event_type, limit, starting_after)


async def get_message(session: AsyncSession, endpoint_id: str, message_id: str) -> WebhookMessage:
    await get_endpoint(session, endpoint_id)
    message = await MessageRepository(session).of_endpoint(endpoint_id, message_id)
    if message is None:
        raise NotFound("no such message", code="webhook_message_not_found")
    return message


async def list_attempts(session: AsyncSession, endpoint_id: str, message_id: str, *, limit: int,
                        starting_after: str | None) -> tuple[list[WebhookAttempt], bool]:
    await get_message(session, endpoint_id, message_id)
    return await AttemptRepository(session).page_of_message(message_id, limit, starting_after)


def _requeue(message: WebhookMessage, now: datetime) -> None:
    """A new round of the retry schedule, starting at once; the attempts log keeps the old rounds.
    A delivery in flight loses its lease: its outcome will not overwrite this."""
    message.status, message.attempts, message.next_attempt_at = "pending", 0, now
    message.last_error, message.delivered_at, message.updated_at = None, None, now
    message.claimed_by = message.lease_until = None


async def retry_message(session: AsyncSession, principal: Principal, endpoint_id: str,
                        message_id: str) -> WebhookMessage:
    """Send again now, whatever the message's state (a receiver that lost a delivered one may ask)."""
    endpoint = await get_endpoint(session, endpoint_id)
    if not endpoint.enabled:
        raise Conflict("the endpoint is disabled; enable it first", code="webhook_endpoint_disabled")
    message = await get_message(session, endpoint_id, message_id)
    message = await MessageRepository(session).get_locked(message.id)
    _requeue(message, clock.now())
    _queue(session, principal.tenant_id, [message.id], requeued=True)
    await session.flush()
    return message


async def recover(session: AsyncSession, principal: Principal, endpoint_id: str, since: datetime,
                  until: datetime | None) -> tuple[int, bool]:
    """Re-send the endpoint's failed messages created in [since, until), oldest first."""
    endpoint = await get_endpoint(session, endpoint_id)
    if not endpoint.enabled:
        raise Conflict("the endpoint is disabled; enable it first", code="webhook_endpoint_disabled")
    now = clock.now()
    until = until or now
    if since >= until:
        raise ValidationFailed("since must be before until", code="recover_window_empty", field="since")
    rows = await MessageRepository(session).failed_between(endpoint_id, since, until, RECOVER_BATCH + 1)
    for message in rows[:RECOVER_BATCH]:
        _requeue(message, now)
    _queue(session, principal.tenant_id, [m.id for m in rows[:RECOVER_BATCH]], requeued=True)
    await session.flush()
    return min(len(rows), RECOVER_BATCH), len(rows) > RECOVER_BATCH
