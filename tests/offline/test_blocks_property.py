"""Property (hypothesis, PostgreSQL, real concurrency): online seals, batches and block allocations run
interleaved by concurrent tasks on one outlet; afterwards the online counters and the blocks' ranges cover
1..N exactly once, and the series' chain runs through every invoice and block record in number order."""
from __future__ import annotations

import asyncio
import json

import httpx
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import select

from stalela.app import create_app
from stalela.fiscal.invoices.models import Invoice, NumberBlock, Series
from stalela.fiscal.ledger.models import LedgerEvent
from stalela.tenancy.context import bind_tenant
from tests.conftest import OPERATOR_TOKEN, make_settings
from tests.offline.support import register_device
from tests.support.invoices import sample_invoice

ZERO = "0" * 64
operation = st.one_of(st.tuples(st.just("seal"), st.integers(1, 3)), st.tuples(st.just("block"), st.integers(1, 6)))
plans = st.lists(st.lists(operation, min_size=1, max_size=6), min_size=2, max_size=4)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=plans)
def test_online_numbers_and_blocks_tile_the_series(_postgres_url, tmp_path_factory, plan):
    asyncio.run(_run(_postgres_url, tmp_path_factory.mktemp("blocks"), plan))


async def _run(url: str, tmp, plan) -> None:  # noqa: ANN001
    app = create_app(make_settings(url, tmp))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            r = await client.post("/v1/tenants", json={"name": "Blocks SARL", "tax_id": "B100", "jurisdiction": "CD"},
                                  headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
            tenant, headers = r.json()["tenant"], {"Authorization": f"Bearer {r.json()['api_key']}"}
            outlet = (await client.post("/v1/outlets", json={"code": "PROP", "name": "P"}, headers=headers)).json()
            device, _ = await register_device(client, headers, tenant["id"], outlet["id"])

            async def worker(ops) -> None:  # noqa: ANN001
                for kind, n in ops:
                    if kind == "block":
                        r = await client.post(f"/v1/devices/{device['id']}/credentials", json={"block_size": n},
                                              headers=headers)
                        assert r.status_code == 201, r.text
                    elif n == 1:
                        r = await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)
                        assert r.status_code == 201, r.text
                    else:
                        items = [{"invoice": sample_invoice(outlet["id"])} for _ in range(n)]
                        r = await client.post("/v1/invoices/batch", json={"items": items}, headers=headers)
                        assert r.json()["sealed"] == n, r.text

            await asyncio.gather(*(worker(ops) for ops in plan))

        async with app.state.db.transaction(readonly=True) as session:
            await bind_tenant(session, tenant["id"])
            invoices = (await session.execute(select(Invoice.counter, Invoice.payload, Invoice.seal_hash))).all()
            blocks = (await session.execute(select(NumberBlock))).scalars().all()
            events = {e.block_id: e for e in (await session.execute(select(LedgerEvent))).scalars()}
            series = (await session.execute(select(Series))).scalar_one()

    numbers = [c for c, _, _ in invoices] + [n for b in blocks for n in range(b.first, b.last + 1)]
    assert sorted(numbers) == list(range(1, series.counter + 1))  # no overlap, no hole
    assert series.counter == sum(n for ops in plan for _, n in ops)
    # One chain through the series, in number order: each record chains to the one before.
    records = [(c, json.loads(p)["prev_hash"], h) for c, p, h in invoices]
    records += [(b.first, json.loads(events[b.id].payload)["prev_hash"], b.anchor_hash) for b in blocks]
    head = ZERO
    for _, prev_hash, own in sorted(records):
        assert prev_hash == head
        head = own
    assert head == series.last_hash
