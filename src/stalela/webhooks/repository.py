"""All webhook SQL. Sessions are bound to a tenant: the tenant filter is added for us."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, distinct, func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from stalela.db.repository import Repository
from stalela.fiscal.invoices.models import Invoice
from stalela.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage


class EndpointRepository(Repository[WebhookEndpoint]):
    model = WebhookEndpoint

    async def live(self, endpoint_id: str, *, lock: bool = False) -> WebhookEndpoint | None:
        stmt = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.deleted_at.is_(None))
        if lock:  # NO KEY UPDATE: foreign key checks of new messages (KEY SHARE) do not wait for it
            stmt = stmt.with_for_update(key_share=True).execution_options(populate_existing=True)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def page_live(self, limit: int, starting_after: str | None) -> tuple[list[WebhookEndpoint], bool]:
        return await self.page(select(WebhookEndpoint).where(WebhookEndpoint.deleted_at.is_(None)),
                               limit=limit, starting_after=starting_after, scope=select(WebhookEndpoint))

    async def enabled(self) -> list[WebhookEndpoint]:
        stmt = select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True), WebhookEndpoint.deleted_at.is_(None))
        return list((await self.session.execute(stmt)).scalars())

    async def note_failure(self, endpoint_id: str, now: datetime) -> datetime | None:
        """Start the endpoint's failing streak unless one is running; returns when the streak began."""
        await self.session.execute(
            update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.failing_since.is_(None))
            .values(failing_since=now).execution_options(synchronize_session=False))
        stmt = select(WebhookEndpoint.failing_since).where(WebhookEndpoint.id == endpoint_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def note_success(self, endpoint_id: str) -> None:
        # Touches the row only when a streak is running: the common case writes nothing here.
        await self.session.execute(
            update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.failing_since.is_not(None))
            .values(failing_since=None).execution_options(synchronize_session=False))

    async def disable(self, endpoint_id: str, reason: str, now: datetime) -> bool:
        """True only for the caller that actually disabled it (so one ``endpoint.disabled`` is sent)."""
        result = await self.session.execute(
            update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.enabled.is_(True))
            .values(enabled=False, disabled_reason=reason, disabled_at=now, updated_at=now)
            .execution_options(synchronize_session=False))
        return result.rowcount == 1


class MessageRepository(Repository[WebhookMessage]):
    model = WebhookMessage

    def _insert(self):  # noqa: ANN202
        return pg_insert if self.session.bind.dialect.name == "postgresql" else sqlite_insert

    async def insert_new(self, rows: list[dict[str, Any]]) -> list[str]:
        """Insert messages, skipping any (endpoint, event) pair already there; returns the new ids."""
        if not rows:
            return []
        stmt = (self._insert()(WebhookMessage).values(rows)
                .on_conflict_do_nothing(index_elements=["tenant_id", "endpoint_id", "event_id"])
                .returning(WebhookMessage.id))
        return list((await self.session.execute(stmt)).scalars())

    async def get_locked(self, message_id: str) -> WebhookMessage | None:
        stmt = (select(WebhookMessage).where(WebhookMessage.id == message_id).with_for_update(key_share=True)
                .execution_options(populate_existing=True))
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def of_endpoint(self, endpoint_id: str, message_id: str) -> WebhookMessage | None:
        stmt = select(WebhookMessage).where(WebhookMessage.endpoint_id == endpoint_id, WebhookMessage.id == message_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def page_of_endpoint(self, endpoint_id: str, status: str | None, event_type: str | None, limit: int,
                               starting_after: str | None) -> tuple[list[WebhookMessage], bool]:
        scope = stmt = select(WebhookMessage).where(WebhookMessage.endpoint_id == endpoint_id)
        if status:
            stmt = stmt.where(WebhookMessage.status == status)
        if event_type:
            stmt = stmt.where(WebhookMessage.event_type == event_type)
        return await self.page(stmt, limit=limit, starting_after=starting_after, scope=scope)

    async def busy_slots(self, endpoint_id: str, now: datetime) -> int:
        """Delivery slots at work for the endpoint: distinct holders of live leases."""
        stmt = (select(func.count(distinct(WebhookMessage.claimed_by)))
                .where(WebhookMessage.endpoint_id == endpoint_id, WebhookMessage.lease_until > now))
        return (await self.session.execute(stmt)).scalar_one()

    async def settle(self, message_id: str, token: str, values: dict[str, Any]) -> bool:
        """Write a delivery's outcome, only while the lease is still that delivery's."""
        result = await self.session.execute(
            update(WebhookMessage)
            .where(WebhookMessage.id == message_id, WebhookMessage.claimed_by == token,
                   WebhookMessage.status == "pending")
            .values(**values).execution_options(synchronize_session=False))
        return result.rowcount == 1

    async def release(self, message_ids: list[str], token: str) -> None:
        """Leased but not sent: back to the queue without spending an attempt."""
        if message_ids:
            await self.session.execute(
                update(WebhookMessage)
                .where(WebhookMessage.id.in_(message_ids), WebhookMessage.claimed_by == token,
                       WebhookMessage.status == "pending")
                .values(claimed_by=None, lease_until=None, attempts=WebhookMessage.attempts - 1)
                .execution_options(synchronize_session=False))

    async def due(self, endpoint_id: str, now: datetime, limit: int,
                  exclude: str | None = None) -> list[tuple[WebhookMessage, WebhookEndpoint]]:
        """The endpoint's oldest due messages nobody is delivering, each with the endpoint, if it still
        takes deliveries (for a delivery slot to lease)."""
        stmt = (select(WebhookMessage, WebhookEndpoint)
                .join(WebhookEndpoint, and_(WebhookEndpoint.tenant_id == WebhookMessage.tenant_id,
                                            WebhookEndpoint.id == WebhookMessage.endpoint_id))
                .where(WebhookMessage.endpoint_id == endpoint_id, WebhookMessage.status == "pending",
                       WebhookMessage.next_attempt_at <= now,
                       or_(WebhookMessage.lease_until.is_(None), WebhookMessage.lease_until < now),
                       WebhookEndpoint.enabled.is_(True), WebhookEndpoint.deleted_at.is_(None))
                .order_by(WebhookMessage.next_attempt_at).limit(limit)
                .with_for_update(of=WebhookMessage, skip_locked=True, key_share=True)
                .execution_options(populate_existing=True))
        if exclude is not None:
            stmt = stmt.where(WebhookMessage.id != exclude)
        return [(m, e) for m, e in await self.session.execute(stmt)]

    async def fail_waiting(self, endpoint_id: str, error: str, now: datetime) -> int:
        """An endpoint was disabled or deleted: its waiting messages fail now (recoverable later)."""
        # Rows another transaction holds are skipped, not waited for (no lock-order deadlock): their
        # own delivery sees the endpoint disabled and fails them.
        waiting = (select(WebhookMessage.tenant_id, WebhookMessage.id)
                   .where(WebhookMessage.endpoint_id == endpoint_id, WebhookMessage.status == "pending",
                          or_(WebhookMessage.lease_until.is_(None), WebhookMessage.lease_until < now))
                   .with_for_update(skip_locked=True))
        result = await self.session.execute(
            update(WebhookMessage)
            .where(tuple_(WebhookMessage.tenant_id, WebhookMessage.id).in_(waiting))
            .values(status="failed", last_error=error, lease_until=None, claimed_by=None, updated_at=now)
            .execution_options(synchronize_session=False))
        return result.rowcount

    async def failed_between(self, endpoint_id: str, since: datetime, until: datetime,
                             limit: int) -> list[WebhookMessage]:
        stmt = (select(WebhookMessage)
                .where(and_(WebhookMessage.endpoint_id == endpoint_id, WebhookMessage.status == "failed",
                            WebhookMessage.created_at >= since, WebhookMessage.created_at < until))
                .order_by(WebhookMessage.created_at).limit(limit))
        return list((await self.session.execute(stmt)).scalars())

    async def invoice_summary(self, invoice_id: str) -> dict[str, Any] | None:
        stmt = select(Invoice.outlet_id, Invoice.fiscal_number).where(Invoice.id == invoice_id)
        row = (await self.session.execute(stmt)).first()
        return {"outlet_id": row[0], "fiscal_number": row[1]} if row else None


class AttemptRepository(Repository[WebhookAttempt]):
    model = WebhookAttempt

    async def page_of_message(self, message_id: str, limit: int,
                              starting_after: str | None) -> tuple[list[WebhookAttempt], bool]:
        return await self.page(select(WebhookAttempt).where(WebhookAttempt.message_id == message_id),
                               limit=limit, starting_after=starting_after)
