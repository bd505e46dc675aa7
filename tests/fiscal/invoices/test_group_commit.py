"""Group commit on SQLite and PostgreSQL: concurrent requests share transactions, yet each keeps its
own number, chain position and leaf, and a group whose transaction fails does not fail its members."""
from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from stalela.fiscal.invoices import group_commit
from tests.support.invoices import sample_invoice
from tests.support.verify import verify_independently


@pytest.fixture
async def shop(client, new_tenant):
    tenant, headers = await new_tenant("Group SARL", "A4445556C")
    outlets = [(await client.post("/v1/outlets", json={"code": f"G{n}", "name": f"Till {n}"}, headers=headers)).json()
               for n in range(3)]
    return tenant, headers, outlets


@pytest.fixture(autouse=True)
def gather_window(app):
    # A window long enough for the requests of one gather() to meet in a group even on a slow run.
    sealer = app.state.sealer
    sealer.settings = sealer.settings.model_copy(update={"group_commit_window_ms": 20})
    # Each test makes well over the default burst of requests with one key.
    limiter = app.state.limiter
    limiter.settings = limiter.settings.model_copy(update={"rate_limit_burst": 100_000})


@pytest.fixture
def group_sizes(monkeypatch) -> list[int]:
    sizes: list[int] = []
    real = group_commit.seal_many

    async def spy(session, settings, tenant_id, requests):  # noqa: ANN001
        sizes.append(len(requests))
        return await real(session, settings, tenant_id, requests)

    monkeypatch.setattr(group_commit, "seal_many", spy)
    return sizes


async def _seal_concurrently(client, headers, outlets, count: int) -> list:
    bodies = [sample_invoice(outlets[i % len(outlets)]["id"]) for i in range(count)]
    for i, body in enumerate(bodies):
        if i % 7 == 3:
            body["type"] = "ZZ"  # rejected by a rule, inside a group
    return await asyncio.gather(*[client.post("/v1/invoices", json=b, headers=headers) for b in bodies])


async def _check_ledger(client, headers, outlets, sealed: list[dict]) -> None:
    jwk = (await client.get(f"/v1/keys/{sealed[0]['seal']['key_id']}")).json()
    by_outlet: dict[str, list[dict]] = {}
    for inv in sealed:
        verify_independently(inv, jwk)
        by_outlet.setdefault(inv["outlet_id"], []).append(inv)
    for outlet in outlets:
        chain = sorted(by_outlet[outlet["id"]], key=lambda i: i["counter"])
        assert [i["counter"] for i in chain] == list(range(1, len(chain) + 1))  # gap-free
        prev = "0" * 64
        for inv in chain:
            assert inv["seal"]["payload"]["prev_hash"] == prev
            prev = inv["seal"]["hash"]
    leaves = [(await client.get(f"/v1/invoices/{i['id']}/proof", headers=headers)).json()["leaf_index"] for i in sealed]
    assert sorted(leaves) == list(range(len(sealed)))


async def test_concurrent_seals_share_commits_and_stay_exact(client, shop, group_sizes):
    _, headers, outlets = shop
    answers = await _seal_concurrently(client, headers, outlets, 60)
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {201: 60 - 9, 422: 9}, statuses
    assert len(group_sizes) < 60 and max(group_sizes) > 1, group_sizes  # really grouped
    await _check_ledger(client, headers, outlets, [a.json() for a in answers if a.status_code == 201])


async def test_a_failing_group_is_sealed_again_one_by_one(client, shop, monkeypatch):
    _, headers, outlets = shop
    real = group_commit.seal_many
    failed: list[int] = []

    async def flaky(session, settings, tenant_id, requests):  # noqa: ANN001
        if len(requests) > 1 and not failed:
            failed.append(len(requests))
            await real(session, settings, tenant_id, requests)
            raise RuntimeError("the database went away mid-group")  # after the writes: all rolled back
        return await real(session, settings, tenant_id, requests)

    monkeypatch.setattr(group_commit, "seal_many", flaky)
    answers = await _seal_concurrently(client, headers, outlets, 30)
    assert failed, "no group was formed"
    assert Counter(a.status_code for a in answers) == {201: 30 - 4, 422: 4}
    await _check_ledger(client, headers, outlets, [a.json() for a in answers if a.status_code == 201])


async def test_without_group_commit_the_results_are_the_same(client, shop, app, group_sizes):
    _, headers, outlets = shop
    app.state.sealer.grouped = False
    answers = await _seal_concurrently(client, headers, outlets, 30)
    assert set(group_sizes) == {1} and len(group_sizes) == 30
    assert Counter(a.status_code for a in answers) == {201: 30 - 4, 422: 4}
    await _check_ledger(client, headers, outlets, [a.json() for a in answers if a.status_code == 201])
