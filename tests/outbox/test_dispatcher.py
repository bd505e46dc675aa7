"""The outbox alone, on SQLite and PostgreSQL: retries with backoff, dead letters, replay, leases,
many dispatchers side by side, graceful release."""
from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from stalela.db.session import Database
from stalela.outbox.dispatcher import Dispatcher, backoff
from stalela.outbox.models import OutboxEvent
from stalela.outbox.registry import RetryLater, handles
from stalela.outbox.repository import OutboxRepository
from stalela.outbox.service import enqueue
from stalela.tenancy.context import bind_platform, bind_tenant
from tests.conftest import make_settings
from tests.support.services import listening

seen: Counter = Counter()
behaviour: dict[str, str] = {}


@handles("test.count")
async def _count(ctx, event):
    seen[event.payload["n"]] += 1


@handles("test.flaky")
async def _flaky(ctx, event):
    seen[event.payload["n"]] += 1
    if behaviour.get(event.payload["n"]) == "fail":
        raise RuntimeError("authority said no")
    if behaviour.get(event.payload["n"]) == "later":
        behaviour.pop(event.payload["n"])
        raise RetryLater("device busy", 0)


@handles("test.slow")
async def _slow(ctx, event):
    await asyncio.sleep(0.2)
    seen[event.payload["n"]] += 1


@pytest.fixture
async def env(fresh_database_url, tmp_path):
    seen.clear()
    behaviour.clear()
    settings = make_settings(fresh_database_url, tmp_path, outbox_max_attempts=3, outbox_backoff_base_seconds=0.001,
                             outbox_backoff_cap_seconds=0.002, outbox_batch_size=50, outbox_poll_seconds=0.05)
    db = Database.from_settings(settings)
    yield db, settings
    await db.dispose()


async def put(db, topic, names, tenant="ten_outboxtest"):
    async with db.transaction() as session:
        await bind_tenant(session, tenant)
        for n in names:
            enqueue(session, tenant, topic, {"n": n})


async def rows(db):
    async with db.transaction(readonly=True) as session:
        await bind_platform(session)
        return {r.payload: r for r in (await session.execute(select(OutboxEvent))).scalars()}


async def drain(dispatcher, rounds=50):
    for _ in range(rounds):
        if await dispatcher.run_once() == 0:
            await asyncio.sleep(0.01)


async def test_failures_back_off_then_die_and_replay_revives(env):
    db, settings = env
    await put(db, "test.flaky", ["ok", "bad"])
    behaviour["bad"] = "fail"
    d = Dispatcher(db, settings)
    await drain(d)
    state = {r.topic + ":" + r.payload: r for r in (await rows(db)).values()}
    ok, bad = state['test.flaky:{"n":"ok"}'], state['test.flaky:{"n":"bad"}']
    assert ok.status == "done" and ok.attempts == 1 and seen["ok"] == 1
    assert bad.status == "dead" and bad.attempts == 3 and seen["bad"] == 3
    assert "authority said no" in bad.last_error

    async with db.transaction() as session:
        await bind_platform(session)
        dead, _ = await OutboxRepository(session).dead("test.flaky", 10, None)
        assert [e.id for e in dead] == [bad.id]
        assert await OutboxRepository(session).replay([bad.id], None) == 1
    behaviour.pop("bad")
    await drain(d)
    revived = {r.payload: r for r in (await rows(db)).values()}['{"n":"bad"}']
    assert revived.status == "done" and seen["bad"] == 4


async def test_retry_later_spends_no_attempt(env):
    db, settings = env
    await put(db, "test.flaky", ["busy"])
    behaviour["busy"] = "later"
    await drain(Dispatcher(db, settings))
    row = (await rows(db))['{"n":"busy"}']
    assert row.status == "done" and row.attempts == 1 and seen["busy"] == 2


async def test_an_expired_lease_is_claimed_again(env):
    db, settings = env
    await put(db, "test.count", ["orphan"])
    async with db.transaction() as session:  # a worker claims, then dies without a word
        await bind_platform(session)
        claimed = await OutboxRepository(session).claim("dead-worker", 10, timedelta(milliseconds=200))
        assert len(claimed) == 1
    other = Dispatcher(db, settings)
    assert await other.run_once() == 0  # still leased
    await asyncio.sleep(0.3)
    assert await other.run_once() == 1
    row = (await rows(db))['{"n":"orphan"}']
    assert row.status == "done" and row.attempts == 2 and seen["orphan"] == 1
    async with db.transaction() as session:  # the dead worker waking up cannot undo the outcome
        await bind_platform(session)
        await OutboxRepository(session).bury((row.tenant_id, row.id), "dead-worker", "late")
    assert (await rows(db))['{"n":"orphan"}'].status == "done"


async def test_a_tenant_scoped_dispatcher_claims_only_that_tenants_events(env):
    db, settings = env
    await put(db, "test.count", ["theirs"], tenant="ten_other")
    await put(db, "test.count", ["mine"], tenant="ten_mine")
    assert await Dispatcher(db, settings, tenant_id="ten_mine").run_once() == 1
    assert dict(seen) == {"mine": 1}
    assert (await rows(db))['{"n":"theirs"}'].attempts == 0
    assert await Dispatcher(db, settings).run_once() == 1 and dict(seen) == {"mine": 1, "theirs": 1}


async def test_many_dispatchers_handle_each_event_once(env):
    db, settings = env
    names = [f"e{i}" for i in range(400)]
    await put(db, "test.count", names)
    dispatchers = [Dispatcher(db, settings, concurrency=4) for _ in range(4)]
    tasks = [asyncio.create_task(d.run()) for d in dispatchers]
    for _ in range(200):
        if sum(seen.values()) >= 400:
            break
        await asyncio.sleep(0.05)
    for d in dispatchers:
        d.stop()
    await asyncio.gather(*tasks)
    assert set(seen) == set(names) and max(seen.values()) == 1
    assert all(r.status == "done" for r in (await rows(db)).values())


async def test_graceful_release_hands_back_claims_without_spending_attempts(env):
    db, settings = env
    await put(db, "test.slow", ["s1", "s2"])
    d = Dispatcher(db, settings)
    task = asyncio.create_task(d.run_once())
    await asyncio.sleep(0.05)
    task.cancel()  # a hard stop in the middle of the batch
    with pytest.raises(asyncio.CancelledError):
        await task
    await d.release_all()
    for row in (await rows(db)).values():
        assert row.status == "pending" and row.lease_until is None and row.attempts == 0
    await drain(Dispatcher(db, settings))
    assert seen == Counter({"s1": 1, "s2": 1})


def test_backoff_is_full_jitter_and_capped(tmp_path):
    settings = make_settings("sqlite:///x.db", tmp_path, outbox_backoff_base_seconds=1, outbox_backoff_cap_seconds=60)
    samples = [backoff(settings, 10) for _ in range(500)]
    assert 0 <= min(samples) and max(samples) <= 60 and max(samples) > 30
    assert all(backoff(settings, 1) <= 1 for _ in range(100))


async def test_operator_api(app, client, operator_headers, new_tenant):
    import uuid

    topic = f"test.api{uuid.uuid4().hex[:8]}"
    db = app.state.db
    await put(db, topic, ["x"])
    async with db.transaction() as session:
        await bind_platform(session)
        await session.execute(update(OutboxEvent).where(OutboxEvent.topic == topic)
                              .values(status="dead", last_error="boom"))
        row = (await session.execute(select(OutboxEvent).where(OutboxEvent.topic == topic))).scalar_one()
    stats = (await client.get("/v1/ops/outbox", headers=operator_headers)).json()["topics"]
    assert {"topic": topic, "pending": 0, "dead": 1, "oldest_pending_seconds": None} in stats
    dead = (await client.get("/v1/ops/outbox/dead", params={"topic": topic}, headers=operator_headers)).json()
    assert [d["id"] for d in dead["data"]] == [row.id] and dead["data"][0]["last_error"] == "boom"
    r = await client.post("/v1/ops/outbox/replay", json={"topic": topic}, headers=operator_headers)
    assert r.json() == {"replayed": 1}
    assert (await client.post("/v1/ops/outbox/replay", json={}, headers=operator_headers)).status_code == 422
    _, tenant_headers = await new_tenant()
    assert (await client.get("/v1/ops/outbox", headers=tenant_headers)).status_code == 401


@pytest.mark.skipif(not listening(4222), reason="no NATS server on 127.0.0.1:4222")
async def test_events_are_relayed_to_jetstream_once(env):
    import uuid

    import nats

    db, settings = env
    stream = f"T{uuid.uuid4().hex[:10].upper()}"
    settings = settings.model_copy(update={"nats_url": "nats://127.0.0.1:4222", "nats_stream": stream})
    await put(db, "test.count", ["r1", "r2"])
    d = Dispatcher(db, settings)
    await drain(d)
    # A retry after a crash publishes again: the event id as message id makes JetStream drop it.
    row = next(iter((await rows(db)).values()))
    await d.relay.publish(row)
    await d.close()
    nc = await nats.connect("nats://127.0.0.1:4222")
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        assert info.state.messages == 2
        sub = await js.pull_subscribe(f"{stream.lower()}.events.>", durable=None, stream=stream)
        msgs = await sub.fetch(2, timeout=5)
        bodies = sorted(json.loads(m.data)["payload"]["n"] for m in msgs)
        assert bodies == ["r1", "r2"] and all(m.headers["Nats-Msg-Id"] for m in msgs)
        await js.delete_stream(stream)
    finally:
        await nc.close()
