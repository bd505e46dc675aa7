"""Writing to the outbox. Delivery (dispatcher, retries, dead letters) builds on these rows."""
from __future__ import annotations

import json
from typing import Any, Callable

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from stalela.audit import platform as platform_audit
from stalela.db.base import utcnow
from stalela.db.routing import DATA_BIND, RoutedSession
from stalela.errors import ValidationFailed
from stalela.kit.clock import rfc3339
from stalela.kit.ids import new_id
from stalela.outbox.models import OutboxEvent
from stalela.outbox.repository import OutboxRepository, notify


# A dedicated database's dispatcher sleeps up to ``dedicated_poll_max_seconds`` when idle; an event written
# there wakes it through the control plane (``NOTIFY``), the one database every worker listens to, rather
# than a listening connection per dedicated database (controlplane/dataplane.py).
# Embedded SQLite has no NOTIFY; its workers share the API's process, where ``local_wakeups`` hear of the
# tenants after the commit.
WAKE_CHANNEL = "stalela_outbox"
_WAKE, _WAKE_LOCAL = "stalela.outbox.wake", "stalela.outbox.wake_local"
local_wakeups: list[Callable[[str], None]] = []


def enqueue(session: AsyncSession, tenant_id: str, topic: str, payload: dict[str, Any]) -> OutboxEvent:
    row = OutboxEvent(**event_row(tenant_id, topic, payload))
    session.add(row)
    _wake_on_commit(session, [tenant_id])
    return row


def event_row(tenant_id: str, topic: str, payload: dict[str, Any]) -> dict[str, Any]:
    """An outbox row as plain values, for ``enqueue_many``."""
    now = utcnow()
    return {"tenant_id": tenant_id, "id": new_id("evt"), "topic": topic,
            "payload": json.dumps(payload, separators=(",", ":"), default=str), "created_at": now,
            "available_at": now, "attempts": 0, "status": "pending"}


async def enqueue_many(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Write many ``event_row``s in the caller's transaction (the sealing of a group)."""
    await OutboxRepository(session).insert_many(rows)
    _wake_on_commit(session, [r["tenant_id"] for r in rows])


def _wake_on_commit(session: AsyncSession, tenant_ids: list[str]) -> None:
    """Remember the tenants whose events went to a dedicated database (a session with a data plane of its
    own); the shared tier's dispatchers poll the control plane often and need no wake-up."""
    if tenant_ids and session.info.get(DATA_BIND) is not None:
        session.info.setdefault(_WAKE, set()).update(tenant_ids)


@event.listens_for(RoutedSession, "before_commit")
def _notify_dedicated(session: Session) -> None:
    """On the control plane's connection, in its transaction: the notification is delivered when it commits,
    possibly a moment before the dedicated database's commit, so a woken dispatcher polls twice."""
    tenants = session.info.pop(_WAKE, None)
    control = session.bind
    if not tenants or control is None:
        return
    if control.dialect.name != "postgresql":
        session.info[_WAKE_LOCAL] = tenants
        return
    notify(session, control, WAKE_CHANNEL, sorted(tenants))


@event.listens_for(RoutedSession, "after_commit")
def _wake_local(session: Session) -> None:
    for tenant_id in sorted(session.info.pop(_WAKE_LOCAL, ())):
        for wake in list(local_wakeups):
            wake(tenant_id)


@event.listens_for(RoutedSession, "after_rollback")
def _forget_wake(session: Session) -> None:
    session.info.pop(_WAKE, None)
    session.info.pop(_WAKE_LOCAL, None)


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
