"""Delivering messages: the retry schedule, per-endpoint concurrency, and the outbox as the safety net.

Each message has one ``webhook.deliver`` outbox event that stays pending until the message is
delivered or failed: the outbox gives durability, leases and spreading over workers. The message row
holds the schedule. A handler run for a message:

1. claims it under a lock on its endpoint row: not yet due -> ``RetryLater`` until it is; the
   endpoint already has ``webhooks_endpoint_concurrency`` deliveries in flight -> park the event
   (``RetryLater`` for a while); otherwise lease the message (``claimed_by``, ``lease_until``);
2. sends it in a *delivery slot*: a task that, after recording the outcome, takes the endpoint's
   next due message itself (same transaction), until none is due. A busy endpoint is thus drained
   by at most N slots, and parked events find their message already delivered when they wake;
3. waits at most ``HANDLER_WAIT`` for its own outcome, then gives the event back to the outbox.
   The dispatcher runs a batch to completion before claiming the next, so a receiver that takes
   15 s must not hold the batch: the slot keeps running in the background.

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
from dataclasses import dataclass
from datetime import datetime, timedelta

from stalela.config import Settings
from stalela.db.session import Database
from stalela.kit.clock import rfc3339
from stalela.kit.ids import new_id
from stalela.observability.logging import get_logger
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
LEASE_MARGIN = 5.0  # seconds a lease outlives the request timeout (time to record the outcome)
HANDLER_WAIT = 1.0  # seconds an outbox handler waits for its delivery before leaving it to its slot
PARK_SECONDS = (15.0, 45.0)  # a message waiting for a busy endpoint's slot looks again after this
MAX_SLOTS = 512  # delivery slots per process (event loop), all endpoints together


def retry_delay(attempts: int) -> float | None:
    """Seconds until the next attempt after ``attempts`` attempts, or None when there is none."""
    if attempts >= len(SCHEDULE):
        return None
    return SCHEDULE[attempts] * random.uniform(1 - JITTER, 1 + JITTER)


@dataclass(frozen=True)
class Job:
    tenant_id: str
    message_id: str
    endpoint_id: str
    url: str
    body: bytes
    secrets: tuple[str, ...]
    attempt: int
    token: str  # claimed_by: a lease is ours only while this is still written on the message


@dataclass(frozen=True)
class Outcome:
    status: str  # delivered | failed | pending
    next_attempt_at: datetime | None = None
    detail: str = ""


class _Runtime:
    """Per event loop: the slots running here (tests run many loops; asyncio objects are per loop)."""

    def __init__(self) -> None:
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.slots: set[asyncio.Task] = set()


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


def _lease(session, settings: Settings, runtime: _Runtime, endpoint: WebhookEndpoint, message: WebhookMessage,
           now: datetime) -> Job:
    lease = settings.webhooks_timeout_seconds + LEASE_MARGIN
    if message.claimed_by is not None:  # leased before and never finished: the worker was lost
        session.add(WebhookAttempt(
            tenant_id=message.tenant_id, id=new_id("att"), message_id=message.id, endpoint_id=message.endpoint_id,
            attempt=message.attempts, started_at=(message.lease_until or now) - timedelta(seconds=lease),
            outcome="interrupted", error="no outcome recorded: the worker delivering it stopped; sending again"))
    token = f"{runtime.worker}/{secrets.token_hex(4)}"
    message.attempts += 1
    message.claimed_by, message.lease_until, message.updated_at = token, now + timedelta(seconds=lease), now
    return Job(message.tenant_id, message.id, message.endpoint_id, endpoint.url, message.payload.encode(),
               tuple(signing_secrets(settings, endpoint, now)), message.attempts, token)


async def _claim(db: Database, settings: Settings, tenant_id: str, message_id: str) -> Job | Outcome:
    """Lease the message for a delivery, or say why not (an ``Outcome``, or ``RetryLater``)."""
    runtime = _runtime()
    async with db.transaction() as session:
        await bind_tenant(session, tenant_id)
        messages = MessageRepository(session)
        # Locks in the order every writer takes them: the message, then its endpoint. The endpoint
        # row lock serializes claims, so the in-flight count below stays true until commit.
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
        if message.lease_until is not None and message.lease_until > now:
            raise RetryLater("being delivered", clock.wait((message.lease_until - now).total_seconds() + 1))
        if message.next_attempt_at > now:
            raise RetryLater(f"next attempt at {rfc3339(message.next_attempt_at)}",
                             clock.wait((message.next_attempt_at - now).total_seconds()))
        if await messages.in_flight(endpoint.id, now) >= settings.webhooks_endpoint_concurrency:
            raise RetryLater("endpoint at its concurrency limit", clock.wait(random.uniform(*PARK_SECONDS)))
        if len(runtime.slots) >= MAX_SLOTS:
            raise RetryLater("worker at its delivery limit", clock.wait(random.uniform(1.0, 3.0)))
        return _lease(session, settings, runtime, endpoint, message, now)


async def deliver(db: Database, settings: Settings, tenant_id: str, message_id: str) -> None:
    """The ``webhook.deliver`` handler: returns once the message is settled, else ``RetryLater``."""
    claimed = await _claim(db, settings, tenant_id, message_id)
    if isinstance(claimed, Outcome):
        return
    runtime = _runtime()
    first: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(_slot(db, settings, claimed, first), name=f"webhook-slot:{claimed.endpoint_id}")
    runtime.slots.add(task)
    task.add_done_callback(runtime.slots.discard)
    try:
        outcome = await asyncio.wait_for(asyncio.shield(first), HANDLER_WAIT)
    except asyncio.TimeoutError:
        raise RetryLater("delivery in progress",
                         clock.wait(settings.webhooks_timeout_seconds + LEASE_MARGIN + 1)) from None
    if outcome.status == "pending":
        raise RetryLater(outcome.detail, clock.wait((outcome.next_attempt_at - clock.now()).total_seconds()))


async def _slot(db: Database, settings: Settings, job: Job | None, first: asyncio.Future) -> None:
    """Deliver ``job``, then the endpoint's next due messages one by one, until none is due."""
    try:
        while job is not None:
            answer = await _send(settings, job)
            outcome, job_next = await _record(db, settings, job, answer)
            if not first.done():
                first.set_result(outcome)
            job = job_next
    except Exception as exc:  # the lease expires and the message's outbox event takes it from there
        log.exception("webhook_slot_failed", endpoint_id=job.endpoint_id if job else None)
        if not first.done():
            first.set_exception(exc)


async def _send(settings: Settings, job: Job) -> transport.Answer:
    timestamp = int(time.time())  # real time: receivers compare it with their own clock
    headers = signing.headers(list(job.secrets), job.message_id, timestamp, job.body)
    return await transport.post(job.url, headers, job.body, timeout=settings.webhooks_timeout_seconds,
                                allow_private=settings.webhooks_allow_private)


def _describe(answer: transport.Answer) -> str | None:
    if answer.ok:
        return None
    if answer.status is None:
        return answer.error
    if 300 <= answer.status < 400:
        return f"HTTP {answer.status}: redirects are not followed"
    return f"HTTP {answer.status}"


async def _record(db: Database, settings: Settings, job: Job, answer: transport.Answer) -> tuple[Outcome, Job | None]:
    """Log the attempt, move the message on, keep the endpoint's health; then take the next due message."""
    async with db.transaction() as session:
        await bind_tenant(session, job.tenant_id)
        now = clock.now()
        error = _describe(answer)
        session.add(WebhookAttempt(
            tenant_id=job.tenant_id, id=new_id("att"), message_id=job.message_id, endpoint_id=job.endpoint_id,
            attempt=job.attempt, started_at=now - timedelta(milliseconds=answer.latency_ms),
            outcome="succeeded" if answer.ok else "failed", status_code=answer.status, latency_ms=answer.latency_ms,
            error=error, response_body=answer.body))
        messages, endpoints = MessageRepository(session), EndpointRepository(session)
        message = await messages.get_locked(job.message_id)
        mine = message is not None and message.status == "pending" and message.claimed_by == job.token
        outcome = Outcome(message.status if message else "failed")
        disable: str | None = None
        if answer.ok:
            await endpoints.note_success(job.endpoint_id)
        else:
            since = await endpoints.note_failure(job.endpoint_id, now)
            if answer.status == 410:
                disable = "gone"
            elif since is not None and now - since >= DISABLE_AFTER:
                disable = "failing"
        if mine:
            outcome = _advance(message, answer, error, now, gone=answer.status == 410)
        if disable and await endpoints.disable(job.endpoint_id, disable, now):
            await _disabled(session, job.tenant_id, job.endpoint_id, disable, now)
        if outcome.status == "pending" and mine:
            log.info("webhook_attempt_failed", message_id=job.message_id, endpoint_id=job.endpoint_id,
                     attempt=job.attempt, status=answer.status, error=(error or "")[:120])
        await session.flush()
        endpoint = await endpoints.live(job.endpoint_id)
        next_job = None
        if _usable(endpoint):
            candidate = await messages.next_due(job.endpoint_id, now)
            if candidate is not None:
                next_job = _lease(session, settings, _runtime(), endpoint, candidate, now)
    return outcome, next_job


def _advance(message: WebhookMessage, answer: transport.Answer, error: str | None, now: datetime, *,
             gone: bool) -> Outcome:
    message.claimed_by, message.lease_until, message.updated_at = None, None, now
    message.last_status_code, message.last_error = answer.status, error
    if answer.ok:
        message.status, message.delivered_at = "delivered", now
        return Outcome("delivered")
    delay = None if gone else retry_delay(message.attempts)
    if delay is not None and answer.retry_after is not None:  # 429 / 503: the receiver says when
        delay = max(1.0, answer.retry_after)
    if delay is None:
        message.status = "failed"
        return Outcome("failed", detail=error or "")
    message.next_attempt_at = now + timedelta(seconds=delay)
    return Outcome("pending", message.next_attempt_at,
                   f"attempt {message.attempts} failed ({error}); next at {rfc3339(message.next_attempt_at)}")


async def _disabled(session, tenant_id: str, endpoint_id: str, reason: str, now: datetime) -> None:
    endpoint = await EndpointRepository(session).live(endpoint_id)
    log.warning("webhook_endpoint_disabled", tenant_id=tenant_id, endpoint_id=endpoint_id, reason=reason)
    await MessageRepository(session).fail_waiting(endpoint_id, "endpoint disabled", now)
    enqueue(session, tenant_id, events.DISABLED_TOPIC, {
        "endpoint_id": endpoint_id, "reason": reason, "disabled_at": rfc3339(now),
        "failing_since": rfc3339(endpoint.failing_since) if endpoint and endpoint.failing_since else None})
