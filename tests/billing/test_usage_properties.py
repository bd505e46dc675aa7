"""Properties of the aggregation: Σ daily = Σ events (voids included) on both databases, whatever the events;
the gauge integral equals a straightforward reference; the digest is `LC_ALL=C sort | sha256sum`."""
from __future__ import annotations

import asyncio
import hashlib
from datetime import date, datetime, timedelta, timezone
from fractions import Fraction

from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from stalela.billing import usage_service
from stalela.billing.usage_math import DAY_MICROS, day_start, digest, gauge_day, round_half_even
from stalela.db.session import Database
from stalela.kit.ids import new_ulid
from stalela.tenancy.context import bind_tenant

NOW = datetime(2026, 5, 20, 15, 0, tzinfo=timezone.utc)
DAY = date(2026, 5, 3)


def _reference(day: date, carry: int | None, samples: list[tuple[datetime, int]]) -> int:
    """Second by second... in exact fractions: the value in force over each interval between instants."""
    start = day_start(day)
    points = [(0, carry or 0)] + [(int((at - start) / timedelta(microseconds=1)), v) for at, v in samples]
    area = Fraction(0)
    for (t0, v), (t1, _) in zip(points, points[1:] + [(DAY_MICROS, 0)]):
        area += Fraction(v) * (t1 - t0)
    mean = area / DAY_MICROS
    return round(mean)  # Python rounds half to even, like the rule


samples_strategy = st.lists(st.tuples(st.integers(0, DAY_MICROS - 1), st.integers(0, 10**12)), max_size=30)


@hyp_settings(max_examples=400, deadline=None)
@given(carry=st.none() | st.integers(0, 10**12), raw=samples_strategy)
def test_gauge_day_matches_the_reference(carry, raw):
    start = day_start(DAY)
    samples = sorted((start + timedelta(microseconds=t), v) for t, v in raw)
    assert gauge_day(DAY, carry, samples) == _reference(DAY, carry, samples)


def test_round_half_even_and_the_digest_rule():
    assert [round_half_even(n, 2) for n in (1, 3, 5, 7)] == [0, 2, 2, 4]
    assert digest(["b", "a", "void:a"]) == hashlib.sha256(b"a\nb\nvoid:a\n").hexdigest()
    assert digest([]) == hashlib.sha256(b"").hexdigest()


events_strategy = st.lists(st.tuples(
    st.integers(0, 20),  # days before NOW's day
    st.integers(0, 86_399),  # second of the day
    st.integers(0, 10**9),  # quantity (cpu_seconds: micro-seconds)
    st.booleans(),  # voided
    st.sampled_from(["api_calls", "cpu_seconds"]),
), max_size=25)


def test_sum_of_daily_equals_sum_of_events(settings):
    @hyp_settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(drawn=events_strategy, aggregate_first=st.booleans())
    def probe(drawn, aggregate_first):
        asyncio.run(_check(settings, drawn, aggregate_first))

    with usage_service.clock.use(lambda: NOW):
        probe()


async def _check(settings, drawn, aggregate_first) -> None:
    db = Database.from_settings(settings)
    tenant_id = f"ten_{new_ulid()}"
    try:
        expected: dict[str, int] = {}
        async with db.transaction() as session:
            await bind_tenant(session, tenant_id)
            items = []
            for i, (back, second, units, _, resource) in enumerate(drawn):
                at = day_start(NOW.date() - timedelta(days=back)) + timedelta(seconds=second)
                quantity = f"{units // 10**6}.{units % 10**6:06d}" if resource == "cpu_seconds" else str(units)
                items.append({"event_id": f"e{i}", "resource": resource, "quantity": quantity,
                              "occurred_at": min(at, NOW).isoformat()})
            outcomes = await usage_service.record(session, settings, tenant_id, items)
            assert all(o.status == 201 for o in outcomes), [o.problem for o in outcomes if o.problem]
            if aggregate_first:  # half the time, voids arrive after a first aggregation
                await usage_service.aggregate(session, tenant_id)
            for i, (_, _, units, voided, resource) in enumerate(drawn):
                expected[resource] = expected.get(resource, 0) + (0 if voided else units)
                if voided:
                    await usage_service.void(session, tenant_id, f"e{i}", None)
        start, end = NOW.date() - timedelta(days=30), NOW.date() + timedelta(days=1)
        async with db.transaction() as session:
            await bind_tenant(session, tenant_id)
            read_before = await usage_service.daily(session, tenant_id, None, start, end, digests=True)
            summed = await usage_service.daily(session, tenant_id, None, start, end)
            await usage_service.aggregate(session, tenant_id)
            read_after = await usage_service.daily(session, tenant_id, None, start, end, digests=True)
            period = await usage_service.period_usage(session, tenant_id, start, end)
        assert read_before == read_after
        # Without digests, the days not aggregated yet are SQL sums: the same figures, no digest.
        assert [(d.day, d.resource, d.quantity, d.event_count) for d in summed] == \
            [(d.day, d.resource, d.quantity, d.event_count) for d in read_after]
        for resource, units in expected.items():
            scale = 6 if resource == "cpu_seconds" else 0
            got = sum(d.quantity for d in read_after if d.resource == resource)
            assert got.scaleb(scale) == units, resource
            assert period[resource].quantity.scaleb(scale) == units
            ids = [f"e{i}" for i, e in enumerate(drawn) if e[4] == resource]
            ids += [f"void:e{i}" for i, e in enumerate(drawn) if e[4] == resource and e[3]]
            assert period[resource].events_sha256 == digest(ids)
            assert period[resource].event_count == len(ids)
    finally:
        await db.dispose()
