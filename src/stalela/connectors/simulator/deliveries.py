"""The webhook sender: one asyncio task per delivery, retried on the platform's schedule.

An event becomes one delivery per subscription that wants its topic. The faults are decided
there, once per delivery: ``drop`` (never sent, retries included), ``duplicate`` (two independent
deliveries), ``stale`` (the order as it was before this change), ``reorder`` (held until
``flush``, then started in a shuffled order). Every attempt is logged in the store; a dropped
delivery is logged once with outcome ``dropped`` and no attempt number.
"""
from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from .state import Subscription

if TYPE_CHECKING:
    from .base import Event, Simulator


@dataclass
class Job:
    event: Event
    sub: Subscription
    payload: dict
    copy: int  # 1, or 2 for the second of a duplicated delivery
    stale: bool
    webhook_id: str  # one per delivery, the same on its retries


class Dispatcher:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.held: list[Job] = []
        self.tasks: set[asyncio.Task] = set()
        self._client: httpx.AsyncClient | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # the server's, once it sent anything

    # -------------------------------------------------------------- scheduling

    def emit(self, events: list[Event]) -> None:
        """Must run on the server's event loop (a route handler)."""
        store, faults = self.sim.store, self.sim.faults
        for event in events:
            with store.lock:
                subs = [s for s in store.subscriptions.values() if s.wants(event.topic)]
            for sub in subs:
                draw = faults.delivery()
                if draw.drop:
                    self._log_outcome(event, sub, "dropped")
                    continue
                stale = draw.stale and event.older is not None
                payload = event.older if stale else event.payload
                for copy in (1, 2) if draw.duplicate else (1,):
                    job = Job(event, sub, payload, copy, stale, str(uuid.uuid4()))
                    if faults.spec.reorder:
                        with store.lock:
                            self.held.append(job)
                    else:
                        self._start(job)

    def flush(self) -> list[Job]:
        """Start every held delivery, in a shuffled order (the order returned)."""
        with self.sim.store.lock:
            jobs, self.held = self.held, []
        self.sim.faults.shuffle(jobs)
        for job in jobs:
            self._start(job)
        return jobs

    def _start(self, job: Job) -> None:
        self.spawn(self._deliver(job))

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        self.loop = asyncio.get_running_loop()
        task = self.loop.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    @property
    def pending(self) -> int:
        return sum(1 for t in self.tasks if not t.done())

    def delays(self) -> tuple[float, ...]:
        options = self.sim.options
        delays = options.retry_delays_s
        if delays is None:
            delays = self.sim.platform.retry_delays_s
        return tuple(d / options.time_scale for d in delays)

    # -------------------------------------------------------------- sending

    async def _deliver(self, job: Job) -> None:
        platform = self.sim.platform
        delays = self.delays()
        for attempt in range(1, len(delays) + 2):
            if job.sub.status != "active":  # disabled, paused or deleted meanwhile
                return
            headers, body = platform.request(job, attempt)
            status, error, took = await self.post(job.sub.address, body, headers)
            ok = status is not None and platform.success(status)
            self._log_attempt(job, attempt, status, error, took, body, headers, ok)
            platform.after_attempt(job.sub, ok)
            if ok:
                return
            if attempt <= len(delays):
                await asyncio.sleep(delays[attempt - 1])
        platform.exhausted(job.sub)

    async def post(self, address: str, body: bytes,
                   headers: dict[str, str]) -> tuple[int | None, str | None, float]:
        """One POST with the platform's deadline: (status or None, error or None, seconds).

        The deadline covers the whole exchange; an answer that comes later is a failure, like a
        platform that stopped listening.
        """
        platform, options = self.sim.platform, self.sim.options
        deadline = options.delivery_timeout_s or platform.timeout_s
        if self._client is None:
            self._client = httpx.AsyncClient(trust_env=False, follow_redirects=False)
        timeout = httpx.Timeout(deadline, connect=min(platform.connect_timeout_s, deadline))
        started = time.monotonic()
        try:
            response = await asyncio.wait_for(
                self._client.post(address, content=body, headers=headers, timeout=timeout),
                deadline)
        except (TimeoutError, httpx.TimeoutException):
            return None, "timeout", time.monotonic() - started
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}", time.monotonic() - started
        return response.status_code, None, time.monotonic() - started

    # -------------------------------------------------------------- the log

    def _base_entry(self, event: Event, sub: Subscription) -> dict:
        return {"event_id": event.id, "topic": event.topic, "order_id": event.order_id,
                "subscription_id": sub.id, "address": sub.address}

    def _log_outcome(self, event: Event, sub: Subscription, outcome: str) -> None:
        self.sim.store.log({**self._base_entry(event, sub), "attempt": None, "status_code": None,
                            "error": None, "outcome": outcome, "copy": 1, "stale": False,
                            "webhook_id": None, "delivery_id": None, "body_sha256": None,
                            "duration_ms": None, "at": self.sim.store.clock.now().isoformat()})

    def _log_attempt(self, job: Job, attempt: int, status: int | None, error: str | None,
                     took: float, body: bytes, headers: dict[str, str], ok: bool) -> None:
        lowered = {k.lower(): v for k, v in headers.items()}
        self.sim.store.log({
            **self._base_entry(job.event, job.sub), "attempt": attempt, "status_code": status,
            "error": error, "outcome": "delivered" if ok else "failed", "copy": job.copy,
            "stale": job.stale, "webhook_id": job.webhook_id,
            "delivery_id": lowered.get("x-wc-webhook-delivery-id"),
            "body_sha256": hashlib.sha256(body).hexdigest(), "duration_ms": round(took * 1000, 1),
            "at": self.sim.store.clock.now().isoformat()})

    def log_ping(self, sub: Subscription, status: int | None, error: str | None,
                 took: float, body: bytes) -> None:
        self.sim.store.log({
            "event_id": None, "topic": "ping", "order_id": None, "subscription_id": sub.id,
            "address": sub.address, "attempt": 1, "status_code": status, "error": error,
            "outcome": "delivered" if status == 200 else "failed", "copy": 1, "stale": False,
            "webhook_id": None, "delivery_id": None,
            "body_sha256": hashlib.sha256(body).hexdigest(), "duration_ms": round(took * 1000, 1),
            "at": self.sim.store.clock.now().isoformat()})

    async def aclose(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
