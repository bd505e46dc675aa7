"""Writing to the outbox. Delivery (dispatcher, retries, dead letters) builds on these rows."""
from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.audit import platform as platform_audit
from stalela.db.base import utcnow
from stalela.errors import ValidationFailed
from stalela.kit.clock import rfc3339
from stalela.kit.ids import new_id
from stalela.outbox.models import OutboxEvent
from stalela.outbox.repository import OutboxRepository


def enqueue(session: AsyncSession, tenant_id: str, topic: str, payload: dict[str, Any]) -> OutboxEvent:
    event = OutboxEvent(**event_row(tenant_id, topic, payload))
    session.add(event)
    return event


def event_row(tenant_id: str, topic: str, payload: dict[str, Any]) -> dict[str, Any]:
    """An outbox row as plain values, for ``enqueue_many``."""
    now = utcnow()
    return {"tenant_id": tenant_id, "id": new_id("evt"), "topic": topic,
            "payload": json.dumps(payload, separators=(",", ":"), default=str), "created_at": now,
            "available_at": now, "attempts": 0, "status": "pending"}


async def enqueue_many(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Write many ``event_row``s in the caller's transaction (the sealing of a group)."""
    await OutboxRepository(session).insert_many(rows)


def render_event(event: OutboxEvent) -> dict[str, Any]:
    return {
        "id": event.id, "tenant_id": event.tenant_id, "topic": event.topic, "status": event.status,
        "attempts": event.attempts, "last_error": event.last_error, "payload": json.loads(event.payload),
        "created_at": rfc3339(event.created_at), "available_at": rfc3339(event.available_at),
    }


async def dead_letters(session: AsyncSession, topic: str | None, limit: int, starting_after: str | None):
    rows, more = await OutboxRepository(session).dead(topic, limit, starting_after)
    return [render_event(r) for r in rows], more


async def replay(session: AsyncSession, ids: list[str] | None, topic: str | None, *, actor: str) -> int:
    """``actor``: the operator, as the platform audit log names them (``Principal.platform_actor``)."""
    if not ids and not topic:
        raise ValidationFailed("give event ids or a topic to replay", code="replay_target_required", field="ids")
    count = await OutboxRepository(session).replay(ids or None, topic)
    await platform_audit.record(session, actor, "outbox.replayed", topic,
                                {"ids": sorted(ids)[:100] if ids else None, "topic": topic, "count": count})
    return count


async def stats(session: AsyncSession) -> list[dict[str, Any]]:
    return await OutboxRepository(session).stats()
