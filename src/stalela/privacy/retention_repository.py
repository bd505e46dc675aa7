"""All retention SQL: the purgers (the data map's purging rules, made executable), the three sets a run
acts on, and the tenant's policies, holds and marks.

A purger says which rows of its table are past their rule: ``anchor < cutoff`` (the cutoff is the
run's time minus the category's period) and, where it applies, a state that makes a row final
(a delivered event, a settled message). A legal hold removes the rows it covers. Of those candidates:

- ``mark``: candidates not marked yet: they get a mark with ``purge_after = now + grace``;
- ``purge``: marked candidates whose ``purge_after`` has passed: they go (the purger's action);
- ``unmark``: marks whose row is no longer a candidate (held since, moved on, policy lengthened, gone).

The preview counts these sets and the run acts on them, both built here by the same functions, so the
two cannot drift. The three are disjoint and acting on one leaves the others as they were, so a run
does what the preview computed before it, and a second run at the same moment finds nothing to do.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import and_, case, delete, exists, func, not_, or_, select, text, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from stalela.assistants.models import DraftApproval, InvoiceDraft
from stalela.connectors.models import ConnectorDelivery
from stalela.auth.models import Invitation, RefreshToken
from stalela.authority.arca.models import ArcaCredential, ArcaTicket
from stalela.db.repository import Repository
from stalela.db.routing import CONTROL_TABLES
from stalela.fiscal.invoices.models import IdempotencyRecord
from stalela.fiscal.ledger.service import LogAppender
from stalela.offline.models import DeviceNonce
from stalela.outbox.models import OutboxEvent
from stalela.privacy import datamap
from stalela.privacy.retention_models import LegalHold, RetentionMark, RetentionPolicy, RetentionSchedule
from stalela.privacy.retention_rules import HoldScope
from stalela.tenancy.models import Tenant
from stalela.webhooks.models import WebhookAttempt, WebhookMessage


@dataclass(frozen=True)
class Window:
    """What one run of one purger for one tenant is evaluated against."""

    tenant_id: str
    now: datetime
    cutoff: datetime
    holds: tuple[HoldScope, ...]


# The action a purger takes on rows whose purge is due: (session, purger, window, keys, still) -> rows
# affected, where ``still`` is the candidate condition, to be re-checked in the statement itself (a
# concurrent change may have made a row stay since it was selected).
Action = Callable[[AsyncSession, "Purger", Window, list[str], Any], Awaitable[int]]


@dataclass(frozen=True)
class Purger:
    """One purging rule of the data map (``datamap.Tag.purger``), made executable.

    ``anchor``: the timestamp the rule counts from; ``key``: the row's key as text (marks, samples);
    ``final``: the state a row must be in besides its age; ``dated``: the time a hold's date range is
    matched against (when the row's business happened; default ``anchor``); ``outlet``: the row's outlet
    for a hold on one (None: no outlet known, and an outlet's hold covers the row); ``action``: what a
    due purge does (default: delete the rows).
    """

    name: str
    model: Any
    category: str
    anchor: Any
    key: Any
    final: Any = None
    dated: Any = None
    # When the row's business ended, if it spans days (a draft from its creation to its last change): a hold's
    # date range covers the row when it meets that span, not only its first day. Default: ``dated``.
    dated_until: Any = None
    outlet: Any = None
    action: Action | None = None

    @property
    def table(self) -> str:
        return self.model.__tablename__

    @property
    def tag(self) -> datamap.TableMap:
        return datamap.DATA_MAP[self.table]

    @property
    def default_days(self) -> int:
        return next(iter(self.tag.columns.values())).default_days if self.tag.columns else 0


PURGERS: dict[str, Purger] = {}


def register(purger: Purger) -> Purger:
    """Add a purger; runs take them in registration order (an FK's child table before its parent)."""
    if purger.name in PURGERS:
        raise ValueError(f"purger {purger.name} is registered twice")
    PURGERS[purger.name] = purger
    return purger


async def _delete_rows(session: AsyncSession, purger: Purger, window: Window, keys: list[str], still: Any) -> int:
    result = await session.execute(delete(purger.model).where(purger.key.in_(keys), still)
                                   .execution_options(synchronize_session=False))
    return result.rowcount


async def _delete_messages(session: AsyncSession, purger: Purger, window: Window, keys: list[str], still: Any) -> int:
    # Their attempts went first (their own purger runs before, with the same period and the same holds:
    # an attempt is dated by its message); any left would block the foreign key.
    gone = select(WebhookMessage.id).where(WebhookMessage.id.in_(keys), still)
    await session.execute(delete(WebhookAttempt).where(WebhookAttempt.tenant_id == window.tenant_id,
                                                       WebhookAttempt.message_id.in_(gone))
                          .execution_options(synchronize_session=False))
    return await _delete_rows(session, purger, window, keys, still)


async def _delete_idempotency_records(session: AsyncSession, purger: Purger, window: Window, keys: list[str],
                                      still: Any) -> int:
    # Sealing reads a key's record under the tenant's log lock and deletes it itself when it has expired
    # (the key is free again): taking that lock first keeps the two from deleting the same row, which
    # would fail the seal's transaction (the ORM's delete expects its row).
    await LogAppender.open(session, window.tenant_id)
    return await _delete_rows(session, purger, window, keys, still)


async def _delete_arca_tickets(session: AsyncSession, purger: Purger, window: Window, keys: list[str], still: Any) -> int:
    # The ARCA agent renews an expired ticket in place (read, log in to WSAA, update) under the lock of
    # the tenant's credentials row: taking it first keeps a purge from deleting the row in between.
    await session.execute(select(ArcaCredential.tenant_id).where(ArcaCredential.tenant_id == window.tenant_id)
                          .with_for_update())
    return await _delete_rows(session, purger, window, keys, still)


async def _delete_drafts(session: AsyncSession, purger: Purger, window: Window, keys: list[str], still: Any) -> int:
    # The drafting service locks a draft's row before it approves, patches, discards or seals it: locking the
    # due drafts first (re-checked: one changed meanwhile is fresh again, and stays) means no approval can be
    # added between the approvals' delete and the draft's, and a seal waiting on the lock finds the draft gone
    # (404 invoice_draft_not_found) instead of sealing half of it. SQLite's writers are serial already.
    due = list((await session.execute(select(InvoiceDraft.id).where(InvoiceDraft.id.in_(keys), still)
                                      .with_for_update())).scalars())
    if not due:
        return 0
    # Approvals go here, with their draft, rather than by a purger of their own: an approval has no date of its
    # own that says its draft is stale, so its own marks and grace would only copy the draft's and could drift
    # from them (a hold placed between the two purgers' batches); deleted here, under the draft's lock, none
    # outlives its draft (no foreign key would stop an orphan) and none goes while its draft stays.
    await session.execute(delete(DraftApproval).where(DraftApproval.tenant_id == window.tenant_id,
                                                      DraftApproval.draft_id.in_(due))
                          .execution_options(synchronize_session=False))
    return await _delete_rows(session, purger, window, due, still)


def _ended(token: Any) -> Any:
    """When a refresh token stopped working: its revocation, or its expiry, whichever came first."""
    return case((and_(token.revoked_at.is_not(None), token.revoked_at < token.expires_at), token.revoked_at),
                else_=token.expires_at)


_family = aliased(RefreshToken)
_FAMILY_END = (select(func.max(_ended(_family)))
               .where(_family.tenant_id == RefreshToken.tenant_id, _family.family_id == RefreshToken.family_id)
               .correlate(RefreshToken).scalar_subquery())
_MESSAGE_CREATED = (select(WebhookMessage.created_at)
                    .where(WebhookMessage.tenant_id == WebhookAttempt.tenant_id,
                           WebhookMessage.id == WebhookAttempt.message_id)
                    .correlate(WebhookAttempt).scalar_subquery())

register(Purger("expired_idempotency_records", IdempotencyRecord, "operational", IdempotencyRecord.expires_at,
                IdempotencyRecord.key, dated=IdempotencyRecord.created_at, action=_delete_idempotency_records))
register(Purger("delivered_outbox_events", OutboxEvent, "operational", OutboxEvent.done_at, OutboxEvent.id,
                final=OutboxEvent.status == "done", dated=OutboxEvent.created_at))
register(Purger("webhook_attempts", WebhookAttempt, "operational", WebhookAttempt.started_at, WebhookAttempt.id,
                dated=_MESSAGE_CREATED))
register(Purger("settled_webhook_messages", WebhookMessage, "operational", WebhookMessage.updated_at,
                WebhookMessage.id, final=WebhookMessage.status.in_(("delivered", "failed")),
                dated=WebhookMessage.created_at, action=_delete_messages))
register(Purger("ended_refresh_tokens", RefreshToken, "secret", _FAMILY_END, RefreshToken.id,
                dated=RefreshToken.created_at))
register(Purger("expired_invitations", Invitation, "personal", Invitation.expires_at, Invitation.id,
                dated=Invitation.created_at))
# A registration challenge is spent or dead within 60 seconds; only its row remains.
register(Purger("expired_device_nonces", DeviceNonce, "operational", DeviceNonce.expires_at, DeviceNonce.nonce))
register(Purger("expired_arca_tickets", ArcaTicket, "secret", ArcaTicket.expires_at,
                ArcaTicket.service + ":" + ArcaTicket.environment, dated=ArcaTicket.created_at,
                action=_delete_arca_tickets))
# A webhook delivery is kept a month after it arrived, once processed (or ignored): what became of its order is
# in connector_orders; its body (the buyer's name and address) is not kept for it.
register(Purger("settled_connector_deliveries", ConnectorDelivery, "personal", ConnectorDelivery.received_at,
                ConnectorDelivery.id, final=ConnectorDelivery.status.in_(("processed", "ignored"))))
# A draft untouched for 90 days goes whatever its status: a sealed one's invoice is the fiscal record and stays;
# its text and body, which may name the buyer, are not kept for it. An outlet's hold keeps that outlet's drafts.
register(Purger("stale_invoice_drafts", InvoiceDraft, "personal", InvoiceDraft.updated_at, InvoiceDraft.id,
                dated=InvoiceDraft.created_at, dated_until=InvoiceDraft.updated_at, outlet=InvoiceDraft.outlet_id,
                action=_delete_drafts))


def _start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.utc)


def _held(purger: Purger, holds: tuple[HoldScope, ...]) -> Any:
    covered = []
    dated = purger.dated if purger.dated is not None else purger.anchor
    for hold in holds:
        parts = []
        if hold.outlet_id is not None and purger.outlet is not None:
            # A row naming no outlet is covered by every outlet's hold (nothing shows it is outside that
            # outlet's business), said outright rather than left to NULL's three-valued logic.
            parts.append(or_(purger.outlet.is_(None), purger.outlet == hold.outlet_id))
        if hold.date_from is not None:
            parts.append((purger.dated_until if purger.dated_until is not None else dated) >= _start(hold.date_from))
        if hold.date_to is not None:
            parts.append(dated < _start(hold.date_to + timedelta(days=1)))
        covered.append(and_(*parts) if parts else true())
    return or_(*covered) if covered else None


def candidates(purger: Purger, window: Window) -> Any:
    """Rows of the tenant past the purger's rule, in their final state, and not held."""
    conditions = [purger.model.tenant_id == window.tenant_id, purger.anchor < window.cutoff]
    if purger.final is not None:
        conditions.append(purger.final)
    held = _held(purger, window.holds)
    if held is not None:
        conditions.append(not_(held))
    return and_(*conditions)


def _marked(purger: Purger, window: Window, *, due: bool = False) -> Any:
    conditions = [RetentionMark.tenant_id == window.tenant_id, RetentionMark.purger == purger.name,
                  RetentionMark.row_key == purger.key]
    if due:
        conditions.append(RetentionMark.purge_after <= window.now)
    return exists().where(*conditions)


def split(purger: Purger) -> bool:
    """Does the purger's table live in the control plane (its sets: ``RetentionRepository.split_keys``)?"""
    return purger.table in CONTROL_TABLES


def sets(purger: Purger, window: Window) -> dict[str, Any]:
    """The keys a run acts on: ``mark``, ``purge`` and ``unmark`` (see the module's docstring)."""
    still = candidates(purger, window)
    row = select(purger.model).where(still, purger.key == RetentionMark.row_key).exists()
    return {
        "unmark": select(RetentionMark.row_key).where(
            RetentionMark.tenant_id == window.tenant_id, RetentionMark.purger == purger.name, not_(row))
        .order_by(RetentionMark.row_key),
        "purge": select(purger.key).where(still, _marked(purger, window, due=True)).order_by(purger.key),
        "mark": select(purger.key).where(still, not_(_marked(purger, window))).order_by(purger.key),
    }


class RetentionRepository:
    """The engine's statements, on a session bound to the tenant (RLS on PostgreSQL)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_tenant(self, tenant_id: str) -> None:
        """One run per tenant at a time (SQLite's write transactions are serialized already)."""
        if self.session.bind.dialect.name == "postgresql":
            await self.session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
                                       {"k": f"retention:{tenant_id}"})

    async def count(self, stmt: Any) -> int:
        return (await self.session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()

    async def keys(self, stmt: Any, limit: int) -> list[str]:
        return list((await self.session.execute(stmt.limit(limit))).scalars())

    async def split_keys(self, purger: Purger, window: Window, name: str) -> list[str]:
        """The set ``name`` of a purger whose table is in the control plane (refresh tokens, invitations),
        computed from two statements: its rows are in the control plane and the tenant's marks in the
        tenant's own database when it has one, so no one statement can see both. Held in memory: a tenant's
        expired tokens and invitations are few (the keys of a run, not of its invoices)."""
        rows = set((await self.session.execute(select(purger.key).where(candidates(purger, window)))).scalars())
        marked = dict((await self.session.execute(
            select(RetentionMark.row_key, RetentionMark.purge_after).where(
                RetentionMark.tenant_id == window.tenant_id, RetentionMark.purger == purger.name))).all())
        if name == "mark":
            found = rows - marked.keys()
        elif name == "purge":
            found = {k for k in rows if k in marked and marked[k] <= window.now}
        else:
            found = marked.keys() - rows
        return sorted(found)

    async def mark(self, purger: Purger, window: Window, keys: list[str], purge_after: datetime) -> int:
        if keys:
            self.session.add_all(RetentionMark(tenant_id=window.tenant_id, purger=purger.name, row_key=k,
                                               marked_at=window.now, purge_after=purge_after) for k in keys)
            await self.session.flush()
        return len(keys)

    async def unmark(self, purger: Purger, window: Window, keys: list[str]) -> int:
        result = await self.session.execute(
            delete(RetentionMark).where(RetentionMark.tenant_id == window.tenant_id,
                                        RetentionMark.purger == purger.name, RetentionMark.row_key.in_(keys))
            .execution_options(synchronize_session=False))
        return result.rowcount

    async def purge(self, purger: Purger, window: Window, keys: list[str]) -> int:
        done = await (purger.action or _delete_rows)(self.session, purger, window, keys, candidates(purger, window))
        await self.unmark(purger, window, keys)
        return done

    async def pending(self, purger: Purger, tenant_id: str) -> tuple[int, datetime | None]:
        """Marks standing (count, the earliest ``purge_after``)."""
        stmt = select(func.count(), func.min(RetentionMark.purge_after)).where(
            RetentionMark.tenant_id == tenant_id, RetentionMark.purger == purger.name)
        count, first = (await self.session.execute(stmt)).one()
        return count, first

    async def tenant_ids(self) -> list[str]:
        """Every tenant (platform-bound session) but those still provisioning: a dedicated one's database
        may not exist yet, and a tenant being provisioned holds nothing to retain."""
        return list((await self.session.execute(select(Tenant.id).where(Tenant.status != "provisioning")
                                                .order_by(Tenant.id))).scalars())


class PolicyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def all(self) -> dict[str, RetentionPolicy]:
        return {p.category: p for p in (await self.session.execute(select(RetentionPolicy))).scalars()}

    async def get(self, category: str) -> RetentionPolicy | None:
        stmt = select(RetentionPolicy).where(RetentionPolicy.category == category)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def save(self, policy: RetentionPolicy) -> RetentionPolicy:
        self.session.add(policy)
        await self.session.flush()
        return policy


class HoldRepository(Repository[LegalHold]):
    model = LegalHold

    async def active(self) -> list[LegalHold]:
        return list((await self.session.execute(select(LegalHold).where(LegalHold.released_at.is_(None)))).scalars())

    async def page_of(self, include_released: bool, limit: int, starting_after: str | None):  # noqa: ANN201
        scope = stmt = select(LegalHold)
        if not include_released:
            stmt = stmt.where(LegalHold.released_at.is_(None))
        return await self.page(stmt, limit=limit, starting_after=starting_after, scope=scope)


class ScheduleRepository:
    """The platform row that says when the daily run is due."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(self, name: str, now: datetime, every: timedelta) -> bool:
        """True for exactly one caller per due run: it moves the next run on by ``every``."""
        insert = pg_insert if self.session.bind.dialect.name == "postgresql" else sqlite_insert
        await self.session.execute(insert(RetentionSchedule).values(name=name, next_run_at=now)
                                   .on_conflict_do_nothing(index_elements=["name"]))
        result = await self.session.execute(
            update(RetentionSchedule).where(RetentionSchedule.name == name, RetentionSchedule.next_run_at <= now)
            .values(next_run_at=now + every, last_started_at=now).execution_options(synchronize_session=False))
        return result.rowcount == 1

    async def finish(self, name: str, now: datetime, result: str) -> None:
        await self.session.execute(
            update(RetentionSchedule).where(RetentionSchedule.name == name)
            .values(last_finished_at=now, last_result=result).execution_options(synchronize_session=False))
