"""The authority's answers in analytics: acknowledgements from the e-MCF simulator (a real HTTP server) and a
refusal, the approval rate and the time from seal to acknowledgement, on SQLite and PostgreSQL; the histogram's
quantiles; an outcome taken back (ARCA authorising a receipt after it was marked rejected)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from stalela.analytics import service
from stalela.authority.models import AuthorityTally
from stalela.authority.outcomes import BUCKETS, Outcomes, bucket_of
from stalela.db.base import utcnow
from stalela.tenancy.context import bind_tenant
from tests.analytics.conftest import get
from tests.authority.test_sync import drain, register, seal, sim, world  # noqa: F401 (fixtures)


async def test_approval_rate_and_seconds_to_acknowledgement(world):  # noqa: F811
    client, headers = world["client"], world["headers"]
    await register(world)
    for _ in range(3):
        await seal(world)
    await drain(world)
    world["sim"].faults(mismatch_rate=1.0)  # the DGI's totals differ: refused, never confirmed
    await seal(world)
    await drain(world)
    world["sim"].faults()
    service.cache.clear()
    body = await get(client, headers, "authority")
    assert (body["acknowledged"], body["failed"], body["rejected"]) == (3, 1, 0)
    assert body["approval_rate"] == 0.75 and body["pending_now"] == 0
    seconds = body["seconds_to_acknowledgement"]
    assert sum(h["count"] for h in seconds["histogram"]) == 3
    assert 0 <= seconds["p50"] <= seconds["p95"] <= 60 and seconds["mean"] >= 0
    assert [d["acknowledged"] for d in body["days"]] == [3] and body["days"][0]["failed"] == 1
    # Sealed, not yet sent: waiting now, in no outcome.
    await seal(world)
    service.cache.clear()
    body = await get(client, headers, "authority")
    assert body["pending_now"] == 1 and body["acknowledged"] == 3
    assert (await client.get("/v1/sync/status", headers=headers)).json()["outlets"][0]["acknowledged"] == 3


def test_quantiles_interpolate_inside_the_bucket():
    counts = [0] * len(BUCKETS)
    counts[1] = 10  # ten answers between 1 and 5 seconds
    assert service.quantile(counts, 0.5) == 3.0 and service.quantile(counts, 1.0) == 5.0
    counts[-1] = 10  # and ten after more than a day
    assert service.quantile(counts, 0.95) == 86_400  # the open bucket answers its lower bound
    assert service.quantile([0] * len(BUCKETS), 0.5) is None
    assert [bucket_of(s) for s in (0, 1, 1.5, 3600, 86_401)] == ["le_1s", "le_1s", "le_5s", "le_1h", "over_1d"]


@pytest.fixture
async def tenant_outlet(client, new_tenant):
    tenant, headers = await new_tenant("Outcomes SARL", "A0000042Z")
    outlet = (await client.post("/v1/outlets", json={"code": "OC1", "name": "O"}, headers=headers)).json()
    return tenant["id"], outlet["id"]


async def test_an_outcome_taken_back_leaves_exactly_the_new_one(db, tenant_outlet):
    tenant_id, outlet_id = tenant_outlet
    sealed = utcnow() - timedelta(minutes=10)
    rejected_at = sealed + timedelta(seconds=30)
    async with db.transaction() as session:
        await bind_tenant(session, tenant_id)
        outcomes = Outcomes(session)
        await outcomes.add(tenant_id, outlet_id, sealed, "rejected", rejected_at)
        await outcomes.write()
    async with db.transaction() as session:  # later, ARCA's CAE arrives after all
        await bind_tenant(session, tenant_id)
        outcomes = Outcomes(session)
        await outcomes.add(tenant_id, outlet_id, sealed, "rejected", rejected_at, sign=-1)
        await outcomes.add(tenant_id, outlet_id, sealed, "acknowledged", sealed + timedelta(seconds=4))
        await outcomes.write()
    async with db.transaction(readonly=True) as session:
        await bind_tenant(session, tenant_id)
        rows = {r.outcome: r for r in (await session.execute(select(AuthorityTally))).scalars()}
    assert (rows["rejected"].count, rows["rejected"].ms_sum, rows["rejected"].le_1m) == (0, 0, 0)
    assert (rows["acknowledged"].count, rows["acknowledged"].ms_sum, rows["acknowledged"].le_5s) == (1, 4000, 1)
