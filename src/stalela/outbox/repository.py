"""All outbox SQL. Claims are leases; completions are guarded by the claimant's id, so a worker that
lost its lease (it was too slow, another worker took over) cannot overwrite the newer outcome."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from stalela.db.base import utcnow
from stalela.db.repository import check_cursor
from stalela.outbox.models import OutboxEvent

Key = tuple[str, str]  # (tenant_id, id)
_NOTIFY = text("SELECT pg_notify(:channel, :tenant)")


def notify(session: Session, bind: Any, channel: str, tenants: list[str]) -> None:
    """PostgreSQL ``NOTIFY`` on ``bind`` (the control plane), from a sync session hook (service.py)."""
    for tenant_id in tenants:
        session.execute(_NOTIFY, {"channel": channel, "tenant": tenant_id}, bind_arguments={"bind": bind})


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_many(self, rows: list[dict]) -> None:
        """Events written together with the facts that cause them, many at once (Core executemany)."""
        if rows:
            await self.session.execute(insert(OutboxEvent.__table__), rows)

    async def claim(self, worker_id: str, batch: int, lease: timedelta, *,
                    tenant_id: str | None = None) -> list[OutboxEvent]:
        now = utcnow()
        due = (
            select(OutboxEvent.tenant_id, OutboxEvent.id)
            .where(OutboxEvent.status == "pending", OutboxEvent.available_at <= now,
                   or_(OutboxEvent.lease_until.is_(None), OutboxEvent.lease_until < now),
                   *([OutboxEvent.tenant_id == tenant_id] if tenant_id is not None else []))
            .order_by(OutboxEvent.available_at)
            .limit(batch)
            # PostgreSQL: concurrent workers skip each other's rows instead of queueing on them.
            # SQLite ignores this; its write transactions are serial anyway (BEGIN IMMEDIATE).
            .with_for_update(skip_locked=True)
        )
        stmt = (
            update(OutboxEvent)
            .where(tuple_(OutboxEvent.tenant_id, OutboxEvent.id).in_(due))
            .values(lease_until=now + lease, claimed_by=worker_id, attempts=OutboxEvent.attempts + 1)
            .returning(OutboxEvent)
            .execution_options(synchronize_session=False)
        )
        return list((await self.session.execute(stmt)).scalars())

    def _mine(self, keys: list[Key], worker_id: str):  # noqa: ANN202
        return and_(tuple_(OutboxEvent.tenant_id, OutboxEvent.id).in_(keys), OutboxEvent.claimed_by == worker_id,
                    OutboxEvent.status == "pending")

    async def complete(self, keys: list[Key], worker_id: str) -> None:
        if keys:
            await self.session.execute(
                update(OutboxEvent).where(self._mine(keys, worker_id))
                .values(status="done", done_at=utcnow(), lease_until=None, last_error=None)
                .execution_options(synchronize_session=False))

    async def reschedule(self, key: Key, worker_id: str, available_at: datetime, error: str | None,
                         *, refund_attempt: bool = False) -> None:
        values = {"available_at": available_at, "lease_until": None, "claimed_by": None}
        if error is not None:
            values["last_error"] = error[:2000]
        if refund_attempt:
            values["attempts"] = OutboxEvent.attempts - 1
        await self.session.execute(update(OutboxEvent).where(self._mine([key], worker_id)).values(**values)
                                   .execution_options(synchronize_session=False))

    async def bury(self, key: Key, worker_id: str, error: str) -> None:
        await self.session.execute(
            update(OutboxEvent).where(self._mine([key], worker_id))
            .values(status="dead", lease_until=None, last_error=error[:2000])
            .execution_options(synchronize_session=False))

    async def release(self, keys: list[Key], worker_id: str) -> None:
        """Graceful shutdown: hand unfinished claims back at once, without spending an attempt."""
        if keys:
            await self.session.execute(
                update(OutboxEvent).where(self._mine(keys, worker_id))
                .values(lease_until=None, claimed_by=None, attempts=OutboxEvent.attempts - 1)
                .execution_options(synchronize_session=False))

    async def dead(self, topic: str | None, limit: int, starting_after: str | None) -> tuple[list[OutboxEvent], bool]:
        scope = select(OutboxEvent)
        if topic:
            scope = scope.where(OutboxEvent.topic == topic)
        stmt = scope.where(OutboxEvent.status == "dead")
        if starting_after:
            # Replayed since the previous page, the cursor is no longer dead: still an event of the list.
            await check_cursor(self.session, scope, OutboxEvent.id, starting_after)
            stmt = stmt.where(OutboxEvent.id < starting_after)
        rows = list((await self.session.execute(stmt.order_by(OutboxEvent.id.desc()).limit(limit + 1))).scalars())
        return rows[:limit], len(rows) > limit

    async def replay(self, ids: list[str] | None, topic: str | None) -> int:
        cond = [OutboxEvent.status == "dead"]
        if ids is not None:
            cond.append(OutboxEvent.id.in_(ids))
        if topic is not None:
            cond.append(OutboxEvent.topic == topic)
        result = await self.session.execute(
            update(OutboxEvent).where(*cond)
            .values(status="pending", attempts=0, available_at=utcnow(), lease_until=None, claimed_by=None)
            .execution_options(synchronize_session=False))
        return result.rowcount

    async def stats(self) -> list[dict]:
        now = utcnow()
        stmt = (select(OutboxEvent.topic, OutboxEvent.status, func.count(), func.min(OutboxEvent.created_at))
                .where(OutboxEvent.status.in_(("pending", "dead"))).group_by(OutboxEvent.topic, OutboxEvent.status))
        out: dict[str, dict] = {}
        for topic, status, count, oldest in await self.session.execute(stmt):
            row = out.setdefault(topic, {"topic": topic, "pending": 0, "dead": 0, "oldest_pending_seconds": None})
            row[status] = count
            if status == "pending" and oldest is not None:
                row["oldest_pending_seconds"] = round((now - oldest).total_seconds(), 3)
        return sorted(out.values(), key=lambda r: r["topic"])
