"""Delivering messages: the retry schedule, per-endpoint concurrency, and the outbox as the safety net.

Each message has one ``webhook.deliver`` outbox event that stays pending until the message is
delivered or failed: the outbox gives durability, leases and spreading over workers. The message row
holds the schedule. A handler run for a message:

1. looks at it (a read): settled -> done; not due yet -> ``RetryLater`` until it is; being sent by a
   slot of this process -> wait for that outcome;
2. otherwise claims it under a lock on its endpoint row. The endpoint already has
   ``webhooks_endpoint_concurrency`` *delivery slots* at work -> park the event (``RetryLater`` for a
   while); else a new slot leases the message (``claimed_by`` = the slot, ``lease_until``);
3. the slot sends it, records the outcome and, in that same transaction, leases the endpoint's next
   due messages: a batch of up to ``BATCH``, as many as the receiver's pace lets it send within
   ``BATCH_SECONDS``, one request after the other, recorded together. Until none is due. A busy
   endpoint is drained by at most N slots; parked events find their message delivered when they wake;
4. the handler waits at most ``HANDLER_WAIT`` for its own message's outcome, then gives the event
   back to the outbox. The dispatcher runs a batch of events to completion before claiming the
   next, so a receiver that takes 15 s must not hold it: the slot goes on in the background.

A worker that dies mid-delivery leaves a lease; once it expires the message's outbox event claims it
again and the same ``webhook-id`` is sent again (the lost try is logged as ``interrupted``).
"""
from __future__ import annotations

import asyncio
import os
import random
import secrets
import socket
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from stalela.config import Settings
from stalela.db.session import Database
from stalela.kit.clock import rfc3339
from stalela.kit.ids import new_id
from stalela.observability.logging import get_logger
from stalela.observability.metrics import webhook_delivery
from stalela.outbox.registry import RetryLater
from stalela.outbox.service import enqueue
from stalela.tenancy.context import bind_tenant
from stalela.webhooks import clock, events, signing, transport
from stalela.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage
from stalela.webhooks.repository import EndpointRepository, MessageRepository
from stalela.webhooks.service import signing_secrets

log = get_logger("stalela.webhooks")

# Seconds to wait before attempt n+1 (n = attempts made): at once, 5 s, 5 min, 30 min, 2 h, 5 h,
# 10 h, 14 h, 20 h, 24 h. After the 10th failed attempt the message has failed.
SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
JITTER = 0.1  # each delay is drawn uniformly within +-10 %
DISABLE_AFTER = timedelta(days=5)  # failing without a single success for this long disables the endpoint
BATCH = 20  # messages a slot leases at most at once (sent one after the other, recorded together)
BATCH_SECONDS = 2.0  # a slot starts no new request of its batch after this; the rest goes back
LEASE_MARGIN = 5.0  # seconds a lease outlives the batch's worst case (time to record the outcome)
HANDLER_WAIT = 1.0  # seconds an outbox handler waits for its delivery before leaving it to its slot
PARK_SECONDS = (15.0, 45.0)  # a message waiting for a busy endpoint's slot looks again after this
MAX_SLOTS = 512  # delivery slots per process (event loop), all endpoints together
RECENT = 10_000  # outcomes remembered per process for the messages' own outbox events


def retry_delay(attempts: int) -> float | None:
    """Seconds until the next attempt after ``attempts`` attempts, or None when there is none."""
    if attempts >= len(SCHEDULE):
        return None
    return SCHEDULE[attempts] * random.uniform(1 - JITTER, 1 + JITTER)


def lease_seconds(settings: Settings) -> float:
    return BATCH_SECONDS + settings.webhooks_timeout_seconds + LEASE_MARGIN


@dataclass(frozen=True)
class Job:
    tenant_id: str
    message_id: str
    endpoint_id: str
    url: str
    body: bytes
    secrets: tuple[str, ...]
    attempt: int
    failing_since: datetime | None  # the endpoint's failure streak when the lease was taken


@dataclass(frozen=True)
class Outcome:
    status: str  # delivered | failed | pending | unknown (not ours to say: look again)
    next_attempt_at: datetime | None = None
    detail: str = ""


class _Runtime:
    """Per event loop: the slots running here and the outcomes their messages will have (tests run
    many loops; asyncio objects belong to one)."""

    def __init__(self) -> None:
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.slots: set[asyncio.Task] = set()
        self.outcomes: dict[str, asyncio.Future] = {}  # message id -> its outcome, while leased here
        # Outcomes recorded here lately: the message's own outbox event, often handled after a slot
        # took and settled the message, then needs no database round trip at all.
        self.recent: OrderedDict[str, Outcome] = OrderedDict()

    def expect(self, jobs: list[Job]) -> None:
        loop = asyncio.get_running_loop()
        for job in jobs:
            self.outcomes[job.message_id] = loop.create_future()

    def resolve(self, message_id: str, outcome: Outcome) -> None:
        future = self.outcomes.pop(message_id, None)
        if future is not None and not future.done():
            future.set_result(outcome)
        if outcome.status in ("delivered", "failed", "pending"):
            self.recent[message_id] = outcome
            if len(self.recent) > RECENT:
                self.recent.popitem(last=False)

    def known(self, message_id: str, *, fresh: bool) -> Outcome | asyncio.Future | None:
        if fresh:  # re-queued over the API since: what is known here no longer holds
            self.recent.pop(message_id, None)
            return None
        return self.outcomes.get(message_id) or self.recent.pop(message_id, None)


_runtimes: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Runtime]" = weakref.WeakKeyDictionary()


def _runtime() -> _Runtime:
    loop = asyncio.get_running_loop()
    runtime = _runtimes.get(loop)
    if runtime is None:
        runtime = _runtimes[loop] = _Runtime()
    return runtime


async def settle(timeout: float = 30.0) -> None:
    """Wait for this loop's delivery slots to finish (tests; a graceful stop)."""
    runtime = _runtime()
    deadline = time.monotonic() + timeout
    while runtime.slots and time.monotonic() < deadline:
        await asyncio.wait(set(runtime.slots), timeout=max(0.0, deadline - time.monotonic()))


def _usable(endpoint: WebhookEndpoint | None) -> bool:
    return endpoint is not None and endpoint.enabled and endpoint.deleted_at is None


def _not_yet(message: WebhookMessage, now: datetime) -> None:
    if message.lease_until is not None and message.lease_until > now:
        raise RetryLater("being delivered", clock.wait((message.lease_until - now).total_seconds() + 1))
    if message.next_attempt_at > now:
        raise RetryLater(f"next attempt at {rfc3339(message.next_attempt_at)}",
                         clock.wait((message.next_attempt_at - now).total_seconds()))


def _lease(session, settings: Settings, token: str, endpoint: WebhookEndpoint, batch: list[WebhookMessage],
           now: datetime) -> list[Job]:
    lease = lease_seconds(settings)
    keys = tuple(signing_secrets(settings, endpoint, now))
    jobs = []
    for message in batch:
        if message.claimed_by is not None:  # leased before and never settled: its worker was lost
            session.add(WebhookAttempt(
                tenant_id=message.tenant_id, id=new_id("att"), message_id=message.id, endpoint_id=message.endpoint_id,
                attempt=message.attempts, started_at=(message.lease_until or now) - timedelta(seconds=lease),
                outcome="interrupted", error="no outcome recorded: the worker delivering it stopped; sending again"))
        message.attempts += 1
        message.claimed_by, message.lease_until, message.updated_at = token, now + timedelta(seconds=lease), now
        jobs.append(Job(message.tenant_id, message.id, message.endpoint_id, endpoint.url, message.payload.encode(),
                        keys, message.attempts, endpoint.failing_since))
    return jobs


async def _claim(db: Database, settings: Settings, tenant_id: str, message_id: str,
                 fresh: bool) -> Outcome | asyncio.Future | tuple[str, list[Job]]:
    """Lease the message for a new slot; or say how it stands: its outcome, the future outcome of a
    slot here that has it, or ``RetryLater``."""
    runtime = _runtime()
    known = runtime.known(message_id, fresh=fresh)
    if known is not None:
        return known
    # Under a backlog most events find their message delivered by a slot, or not due yet: answer
    # those from a read, without write locks.
    async with db.transaction(readonly=True) as session:
        await bind_tenant(session, tenant_id)
        message = await MessageRepository(session).get(message_id)
        if message is None or message.status != "pending":
            return Outcome(message.status if message else "failed")
        if _usable(await EndpointRepository(session).live(message.endpoint_id)):  # else: fail it below
            _not_yet(message, clock.now())
    async with db.transaction() as session:
        await bind_tenant(session, tenant_id)
        messages = MessageRepository(session)
        # Locks in the order every writer takes them: the message, then its endpoint. The endpoint
        # row lock serializes claims, so the count of busy slots below stays true until commit.
        message = await messages.get_locked(message_id)
        if message is None or message.status != "pending":
            return Outcome(message.status if message else "failed")
        endpoint = await EndpointRepository(session).live(message.endpoint_id, lock=True)
        now = clock.now()
        if not _usable(endpoint):
            reason = "endpoint deleted" if endpoint is None else "endpoint disabled"
            message.status, message.last_error, message.updated_at = "failed", reason, now
            message.claimed_by = message.lease_until = None
            return Outcome("failed", detail=reason)
        _not_yet(message, now)
        # Slots free up in real time, whatever the clock says: these waits are real seconds.
        if await messages.busy_slots(endpoint.id, now) >= settings.webhooks_endpoint_concurrency:
            raise RetryLater("endpoint at its concurrency limit", random.uniform(*PARK_SECONDS))
        if len(runtime.slots) >= MAX_SLOTS:
            raise RetryLater("worker at its delivery limit", random.uniform(1.0, 3.0))
        token = f"{runtime.worker}/{secrets.token_hex(4)}"
        return token, _lease(session, settings, token, endpoint, [message], now)


async def deliver(db: Database, settings: Settings, tenant_id: str, message_id: str, *, fresh: bool = False) -> None:
    """The ``webhook.deliver`` handler: returns once the message is settled, else ``RetryLater``.
    ``fresh``: the message was re-queued (retry, recover) after its last outcome here."""
    claimed = await _claim(db, settings, tenant_id, message_id, fresh)
    runtime = _runtime()
    if isinstance(claimed, Outcome):
        if claimed.status == "pending" and claimed.next_attempt_at is not None:  # settled here lately
            raise RetryLater(claimed.detail, clock.wait((claimed.next_attempt_at - clock.now()).total_seconds()))
        return
    if isinstance(claimed, tuple):
        token, jobs = claimed
        runtime.expect(jobs)
        future = runtime.outcomes[message_id]
        task = asyncio.create_task(_slot(db, settings, token, jobs), name=f"webhook-slot:{jobs[0].endpoint_id}")
        runtime.slots.add(task)
        task.add_done_callback(runtime.slots.discard)
    else:
        future = claimed
    try:
        outcome = await asyncio.wait_for(asyncio.shield(future), HANDLER_WAIT)
    except asyncio.TimeoutError:
        raise RetryLater("delivery in progress", clock.wait(lease_seconds(settings) + 1)) from None
    runtime.recent.pop(message_id, None)  # this event was the one to learn it
    if outcome.status == "pending":
        raise RetryLater(outcome.detail, clock.wait((outcome.next_attempt_at - clock.now()).total_seconds()))
    if outcome.status == "unknown":  # handed back unsent, or the lease went to another delivery
        raise RetryLater("look again", clock.wait(1.0))


async def _slot(db: Database, settings: Settings, token: str, jobs: list[Job]) -> None:
    """Send the batch, record it and take the endpoint's next due batch, until none is due."""
    runtime = _runtime()
    try:
        while jobs:
            started, sent = time.monotonic(), []
            for job in jobs:
                if sent and time.monotonic() - started > BATCH_SECONDS:
                    break
                sent.append((job, await _send(settings, job)))
            unsent = jobs[len(sent):]
            # As many next as fit the batch's time at this receiver's pace: a slow one gets one at a time.
            pace = sum(a.latency_ms for _, a in sent) / len(sent)
            size = max(1, min(BATCH, int(BATCH_SECONDS * 1000 / max(pace, 1.0))))
            outcomes, jobs = await _record(db, settings, token, sent, unsent, size)
            for job, outcome in outcomes:
                runtime.resolve(job.message_id, outcome)
            for job in unsent:
                runtime.resolve(job.message_id, Outcome("unknown"))
            runtime.expect(jobs)
    except Exception:  # the leases expire and the messages' outbox events take it from there
        log.exception("webhook_slot_failed", endpoint_id=jobs[0].endpoint_id if jobs else None)
    finally:
        for job in jobs:
            runtime.resolve(job.message_id, Outcome("unknown"))


async def _send(settings: Settings, job: Job) -> transport.Answer:
    timestamp = int(time.time())  # real time: receivers compare it with their own clock
    headers = signing.headers(list(job.secrets), job.message_id, timestamp, job.body)
    with webhook_delivery(job.url) as call:  # webhook_deliveries_total{result}, duration, client span
        answer = await transport.post(job.url, headers, job.body, timeout=settings.webhooks_timeout_seconds,
                                      allow_private=settings.webhooks_allow_private)
        call.done(answer.status, answer.detail or answer.error)
    if answer.detail:  # the attempt log keeps a fixed text (transport.UNREACHABLE); the details go here
        log.warning("webhook.no_answer", tenant_id=job.tenant_id, endpoint_id=job.endpoint_id,
                    message_id=job.message_id, attempt=job.attempt, error=answer.detail)
    return answer


def _describe(answer: transport.Answer) -> str | None:
    if answer.ok:
        return None
    if answer.status is None:
        return answer.error
    if 300 <= answer.status < 400:
        return f"HTTP {answer.status}: redirects are not followed"
    return f"HTTP {answer.status}"


async def _record(db: Database, settings: Settings, token: str, sent: list[tuple[Job, transport.Answer]],
                  unsent: list[Job], size: int) -> tuple[list[tuple[Job, Outcome]], list[Job]]:
    """Log the attempts, move the messages on, keep the endpoint's health; then lease the next batch."""
    head = sent[0][0]
    async with db.transaction() as session:
        await bind_tenant(session, head.tenant_id)
        now = clock.now()
        messages, endpoints = MessageRepository(session), EndpointRepository(session)
        outcomes = []
        for job, answer in sent:
            error = _describe(answer)
            session.add(WebhookAttempt(
                tenant_id=job.tenant_id, id=new_id("att"), message_id=job.message_id, endpoint_id=job.endpoint_id,
                attempt=job.attempt, started_at=now - timedelta(milliseconds=answer.latency_ms),
                outcome="succeeded" if answer.ok else "failed", status_code=answer.status,
                latency_ms=answer.latency_ms, error=error, response_body=answer.body))
            outcome, values = _advance(job, answer, error, now)
            if not await messages.settle(job.message_id, token, values):
                outcome = Outcome("unknown")  # the lease expired and another delivery took over
            elif outcome.status == "pending":
                log.info("webhook_attempt_failed", message_id=job.message_id, endpoint_id=job.endpoint_id,
                         attempt=job.attempt, status=answer.status, error=(error or "")[:120])
            outcomes.append((job, outcome))
        await messages.release([j.message_id for j in unsent], token)
        disable = await _health(endpoints, head, [a for _, a in sent], now)
        if disable and await endpoints.disable(head.endpoint_id, disable, now):
            await _disabled(session, head.tenant_id, head.endpoint_id, disable, now)
        await session.flush()
        following: list[Job] = []
        if not disable:
            due = await messages.due(head.endpoint_id, now, size)
            if due:
                following = _lease(session, settings, token, due[0][1], [m for m, _ in due], now)
    return outcomes, following


async def _health(endpoints: EndpointRepository, head: Job, answers: list[transport.Answer],
                  now: datetime) -> str | None:
    """A success ends the endpoint's failure streak; failures start one. Returns why to disable it."""
    if answers[-1].ok:
        if head.failing_since is not None:
            await endpoints.note_success(head.endpoint_id)
        return None
    since = head.failing_since or await endpoints.note_failure(head.endpoint_id, now)
    if any(a.status == 410 for a in answers):
        return "gone"
    if since is not None and now - since >= DISABLE_AFTER:
        return "failing"
    return None


def _advance(job: Job, answer: transport.Answer, error: str | None, now: datetime) -> tuple[Outcome, dict]:
    """The message's next state after this attempt: delivered, failed, or its next attempt's time."""
    values = {"claimed_by": None, "lease_until": None, "updated_at": now, "last_status_code": answer.status,
              "last_error": error}
    if answer.ok:
        return Outcome("delivered"), values | {"status": "delivered", "delivered_at": now}
    delay = None if answer.status == 410 else retry_delay(job.attempt)
    if delay is not None and answer.retry_after is not None:  # 429 / 503: the receiver says when
        delay = max(1.0, answer.retry_after)
    if delay is None:
        return Outcome("failed", detail=error or ""), values | {"status": "failed"}
    at = now + timedelta(seconds=delay)
    return (Outcome("pending", at, f"attempt {job.attempt} failed ({error}); next at {rfc3339(at)}"),
            values | {"next_attempt_at": at})


async def _disabled(session, tenant_id: str, endpoint_id: str, reason: str, now: datetime) -> None:
    endpoint = await EndpointRepository(session).live(endpoint_id)
    log.warning("webhook_endpoint_disabled", tenant_id=tenant_id, endpoint_id=endpoint_id, reason=reason)
    await MessageRepository(session).fail_waiting(endpoint_id, "endpoint disabled", now)
    enqueue(session, tenant_id, events.DISABLED_TOPIC, {
        "endpoint_id": endpoint_id, "reason": reason, "disabled_at": rfc3339(now),
        "failing_since": rfc3339(endpoint.failing_since) if endpoint and endpoint.failing_since else None})
