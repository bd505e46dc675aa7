"""1,000 events to 3 endpoints, one of them down for the first half: every message arrives, once.

On PostgreSQL, where workers really run side by side (row locks, SKIP LOCKED); the same code on SQLite
is covered by the other tests, and this one would only take the time twice.
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from stalela.outbox.dispatcher import Dispatcher
from stalela.webhooks import delivery
from tests.webhooks.test_delivery import SEALED

HALF = 500


async def _until(predicate, what: str, timeout: float = 300.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("hooks_database_url", ["postgres"], indirect=True)
async def test_thousand_events_three_endpoints_one_down_for_the_first_half(world, receiver, clock):
    # Outbox events of messages waiting for their next attempt sleep a real minute: the delivery
    # slots (which take every due message of their endpoint) do the work, as they would in production.
    clock.max_wait = 60.0
    receiver.answer("/c", default=503)
    a, b, c = [await world.endpoint(p) for p in ("/a", "/b", "/c")]
    dispatchers = [Dispatcher(world.db, world.settings, concurrency=8) for _ in range(2)]
    runs = [asyncio.create_task(d.run()) for d in dispatchers]

    def ok_ids(path: str) -> set[str]:
        return {r.id for r in receiver.at(path)}

    async def first_half_done() -> bool:
        tried = [m for m in await world.stored() if m.endpoint_id == c["id"] and m.attempts >= 1]
        return len(ok_ids("/a")) == len(ok_ids("/b")) == HALF and len(tried) == HALF

    try:
        await world.emit("invoice.sealed", SEALED, count=HALF)
        await _until(first_half_done, "the first half")
        assert {m.status for m in await world.stored() if m.endpoint_id == c["id"]} == {"pending"}
        await delivery.settle()  # nothing in flight: no lease may expire when the clock jumps
        receiver.answer("/c", default=200)  # the endpoint comes back...
        clock.advance(minutes=10)  # ...the first half's retries come due...
        await world.emit("invoice.sealed", SEALED, count=HALF)  # ...and the second half arrives

        async def all_done() -> bool:
            return all(len(ok_ids(p)) == 2 * HALF for p in ("/a", "/b", "/c")) and \
                all(m.status == "delivered" for m in await world.stored())
        await _until(all_done, "every delivery")
    finally:
        for d in dispatchers:
            d.stop()
        await asyncio.gather(*runs)
    stored = await world.stored()
    assert len(stored) == 3 * 2 * HALF and {m.status for m in stored} == {"delivered"}
    for path in ("/a", "/b"):  # the endpoints that were up got each message exactly once
        assert max(Counter(r.id for r in receiver.at(path)).values()) == 1
    retried = [m for m in stored if m.endpoint_id == c["id"] and m.attempts == 2]
    assert len(retried) == HALF  # the down half: one failure, then delivered on the retry
    assert len(receiver.at("/c")) == 3 * HALF
