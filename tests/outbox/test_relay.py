"""The NATS relay against the real JetStream server on this machine: subjects per tenant, a stream of
its own per dedicated tenant, headers, de-duplication; every stream a test makes has a name of its own
and is deleted afterwards."""
from __future__ import annotations

import asyncio
import json
import uuid

import nats
import nats.errors
import pytest
from sqlalchemy import select

from stalela.db.session import Database
from stalela.outbox.dispatcher import Dispatcher
from stalela.outbox.models import OutboxEvent
from stalela.outbox.relay import NatsRelay
from stalela.outbox.service import enqueue
from stalela.tenancy.context import bind_platform, bind_tenant
from stalela.tenancy.models import Tenant
from tests.conftest import make_settings
from tests.support.services import listening

NATS = "nats://127.0.0.1:4222"


pytestmark = pytest.mark.skipif(not listening(4222), reason="no NATS server on 127.0.0.1:4222")


@pytest.fixture
async def env(fresh_database_url, tmp_path):
    stream = f"T{uuid.uuid4().hex[:10].upper()}"
    settings = make_settings(fresh_database_url, tmp_path, nats_url=NATS, nats_stream=stream,
                             outbox_poll_seconds=0.05)
    db = Database.from_settings(settings)
    nc = await _connect()
    try:
        yield db, settings, nc.jetstream()
    finally:
        # Every stream this test's relay made: the shared one and the dedicated ones after it.
        for name in [n async for n in _stream_names(nc.jetstream()) if n == stream or n.startswith(f"{stream}_")]:
            await nc.jetstream().delete_stream(name)
        await nc.close()
        await db.dispose()


async def _connect():  # noqa: ANN202
    return await nats.connect(NATS)


async def _stream_names(js):  # noqa: ANN001, ANN202
    for name in await js.streams_info():
        yield name.config.name


async def tenants(db, *tiers: str) -> list[str]:  # noqa: ANN001
    ids = [f"ten_{uuid.uuid4().hex[:12]}" for _ in tiers]
    async with db.transaction() as session:
        await bind_platform(session)
        for tenant_id, tier in zip(ids, tiers):
            session.add(Tenant(id=tenant_id, name=tenant_id, tax_id="T1", jurisdiction="CD", tier=tier))
    return ids


async def put(db, tenant_id: str, names: list[str], topic: str = "test.relay.sealed") -> None:  # noqa: ANN001
    async with db.transaction() as session:
        await bind_tenant(session, tenant_id)
        for n in names:
            enqueue(session, tenant_id, topic, {"n": n})


async def drain(dispatcher: Dispatcher) -> None:
    for _ in range(50):
        if await dispatcher.run_once() == 0:
            return
    raise AssertionError("the outbox did not drain")


async def fetch_all(js, subject: str, stream: str, expected: int) -> list:  # noqa: ANN001
    sub = await js.pull_subscribe(subject, durable=None, stream=stream)
    msgs = await sub.fetch(expected, timeout=5) if expected else []
    try:  # nothing more than that
        more = await sub.fetch(1, timeout=0.5)
    except asyncio.TimeoutError:
        more = []
    await sub.unsubscribe()
    return [*msgs, *more]


async def test_a_consumer_of_one_tenants_subject_sees_only_its_events(env):
    db, settings, js = env
    one, two = await tenants(db, "shared", "dedicated")  # without dedicated streams: both shared
    p = settings.nats_stream.lower()
    # A plain NATS subscriber (no stream) may follow a tenant whichever tier it is on.
    nc = await _connect()
    live = await nc.subscribe(f"{p}.events.*.{two}.>")
    await put(db, one, ["a1", "a2"])
    await put(db, two, ["b1"], topic="test.relay.other")
    d = Dispatcher(db, settings)
    await drain(d)
    await d.close()
    mine = await fetch_all(js, f"{p}.events.tenants.{one}.>", settings.nats_stream, 2)
    assert sorted(json.loads(m.data)["payload"]["n"] for m in mine) == ["a1", "a2"]
    assert {m.subject for m in mine} == {f"{p}.events.tenants.{one}.test.relay.sealed"}
    assert {(m.headers["Stalela-Tenant-Id"], m.headers["Stalela-Topic"]) for m in mine} == {(one, "test.relay.sealed")}
    assert all(m.headers["Nats-Msg-Id"] == json.loads(m.data)["id"] for m in mine)
    # One topic of every tenant of the stream.
    sealed = await fetch_all(js, f"{p}.events.tenants.*.test.relay.sealed", settings.nats_stream, 2)
    assert {m.headers["Stalela-Tenant-Id"] for m in sealed} == {one}
    theirs = await live.next_msg(timeout=5)
    assert theirs.subject == f"{p}.events.tenants.{two}.test.relay.other"
    with pytest.raises(nats.errors.TimeoutError):  # and nothing of the other tenant
        await live.next_msg(timeout=0.3)
    await nc.close()


async def test_a_dedicated_tenants_events_land_in_its_own_stream_and_not_the_shared_one(env):
    db, settings, js = env
    settings = settings.model_copy(update={"nats_dedicated_streams": True})
    shared, dedicated = await tenants(db, "shared", "dedicated")
    await put(db, shared, ["s1"])
    await put(db, dedicated, ["d1", "d2"])
    d = Dispatcher(db, settings)
    await drain(d)
    p, stream = settings.nats_stream.lower(), settings.nats_stream
    own = f"{stream}_{dedicated}"
    info = await js.stream_info(own)
    assert info.config.subjects == [f"{p}.events.dedicated.{dedicated}.>"] and info.state.messages == 2
    shared_info = await js.stream_info(stream)
    assert shared_info.config.subjects == [f"{p}.events.tenants.>"] and shared_info.state.messages == 1
    # The dedicated stream inherits the shared one's retention (the operator configures it once).
    assert info.config.duplicate_window == shared_info.config.duplicate_window
    msgs = await fetch_all(js, f"{p}.events.>", own, 2)
    assert {m.headers["Stalela-Tenant-Id"] for m in msgs} == {dedicated}
    assert {m.subject for m in msgs} == {f"{p}.events.dedicated.{dedicated}.test.relay.sealed"}
    assert [json.loads(m.data)["tenant_id"] for m in await fetch_all(js, f"{p}.events.>", stream, 1)] == [shared]

    # A retry after a crash publishes again: the dedicated stream drops it like the shared one.
    async with db.transaction(readonly=True) as session:
        await bind_platform(session)
        row = (await session.execute(select(OutboxEvent).where(OutboxEvent.tenant_id == dedicated))).scalars().first()
    await d.relay.publish(row)
    await d.close()
    assert (await js.stream_info(own)).state.messages == 2


async def test_an_old_catch_all_stream_gives_up_the_dedicated_subjects(env):
    """A stream made by an earlier version holds ``p.events.>``, which would overlap every dedicated stream."""
    from nats.js.api import StreamConfig

    db, settings, js = env
    p, stream = settings.nats_stream.lower(), settings.nats_stream
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{p}.events.>"]))
    settings = settings.model_copy(update={"nats_dedicated_streams": True})
    (dedicated,) = await tenants(db, "dedicated")
    await put(db, dedicated, ["d1"])
    d = Dispatcher(db, settings)
    await drain(d)
    await d.close()
    assert (await js.stream_info(stream)).config.subjects == [f"{p}.events.tenants.>"]
    assert (await js.stream_info(f"{stream}_{dedicated}")).state.messages == 1
    assert (await js.stream_info(stream)).state.messages == 0


async def test_the_tier_is_looked_up_once_per_ttl_and_only_with_dedicated_streams(tmp_path, database_url):
    asked: list[str] = []

    async def tier_of(tenant_id: str) -> str:
        asked.append(tenant_id)
        return "dedicated"

    on = NatsRelay(make_settings(database_url, tmp_path, nats_url=NATS, nats_dedicated_streams=True), tier_of)
    assert [await on.tier("ten_a") for _ in range(3)] == ["dedicated"] * 3 and asked == ["ten_a"]
    assert on.subject("ten_a", "invoice.sealed", "dedicated") == "stalela.events.dedicated.ten_a.invoice.sealed"
    assert on.stream_of("ten_a", "dedicated") == "STALELA_ten_a"
    off = NatsRelay(make_settings(database_url, tmp_path, nats_url=NATS), tier_of)
    assert await off.tier("ten_b") == "shared" and asked == ["ten_a"]
    assert off.subject("ten_b", "invoice.sealed", "dedicated") == "stalela.events.tenants.ten_b.invoice.sealed"
    with pytest.raises(ValueError):
        off.subject("ten.b", "test.relay.sealed")  # never a second token, nor a wildcard
