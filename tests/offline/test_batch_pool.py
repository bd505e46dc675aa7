"""A returned batch's signatures checked in a pool of processes: the same outcome, invoice by invoice, as
inline; the merge through the API with the pool on; a broken pool falls back inline."""
from __future__ import annotations

import asyncio
import os
import signal

import pytest

from stalela.fiscal.core import offline as core
from stalela.offline import batch_checks, batch_pool, batch_service
from stalela.offline.batch_schemas import BatchCreate
from tests.offline.batch_support import new_device, offline_outlet


def _view(prepared) -> list[tuple]:  # noqa: ANN001
    return [(p.index, p.held, p.refusal, p.counter, p.prev_hash, p.hash, p.issued, p.signed,
             p.recomputed.payload if p.recomputed else None) for p in prepared]


async def _warm(processes: int) -> None:
    """The pool started and ready (a batch meanwhile is checked inline)."""
    for _ in range(600):
        if batch_pool._pool_of(processes) is not None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the pool never started")


async def _batch(client, new_tenant, size: int, *, faults: bool = True):  # noqa: ANN001, ANN202
    tenant, headers, outlet = await offline_outlet(client, new_tenant)
    device = await new_device(client, headers, tenant["id"], outlet["id"], block_size=size + 5)
    items = [device.seal() for _ in range(size)]
    if not faults:
        return headers, device, items
    # One forged (held), one whose request breaks a rule the engine checks (refused), one off its block.
    items[7] = {**items[7], "seal": {**items[7]["seal"], "payload": {**items[7]["seal"]["payload"], "total": "1.00"}}}
    device.next, device.head = items[20]["seal"]["payload"]["counter"], items[20]["seal"]["payload"]["prev_hash"]
    items[20] = device.seal(tamper=lambda payload: payload.update(total="1.00"))  # signed, but not the engine's
    items[-1]["seal"]["payload"]["counter"] += 1000
    return headers, device, items


async def test_the_pool_checks_exactly_as_inline(client, new_tenant, settings, monkeypatch):
    size = batch_pool.POOL_MIN + 13
    _, device, items = await _batch(client, new_tenant, size)
    body = BatchCreate.model_validate(device.batch(items))
    jwk = core.device_public_jwk(device.claims["cnf"]["jwk"])
    plan = batch_service.numbering(device.claims, jwk)
    try:
        await _warm(2)
        with monkeypatch.context() as m:  # this process checks no signature: the pool's processes do
            m.setattr(batch_checks, "signature", lambda *a: pytest.fail("a signature checked inline"))
            pooled = await batch_pool.prepare_all(settings.model_copy(update={"offline_check_processes": 2}),
                                                  body.invoices, plan, jwk, device.claims["block"])
        inline = await batch_pool.prepare_all(settings.model_copy(update={"offline_check_processes": 0}),
                                              body.invoices, plan, jwk, device.claims["block"])
        assert _view(pooled) == _view(inline)
        assert [p.index for p in pooled] == list(range(size))
        assert pooled[7].held.code == "offline_signature_invalid"
        assert pooled[20].refusal is not None and pooled[20].held is None
        assert sum(p.held is None and p.refusal is None for p in pooled) == size - 3

        # A worker killed: that batch is checked inline, the next one starts a new pool.
        for pid in list(batch_pool._pool._processes):
            os.kill(pid, signal.SIGKILL)
        again = await batch_pool.prepare_all(settings.model_copy(update={"offline_check_processes": 2}),
                                             body.invoices, plan, jwk, device.claims["block"])
        assert _view(again) == _view(inline)
        assert batch_pool._pool is None
        await _warm(2)
    finally:
        batch_pool.shutdown()
    assert batch_pool._pool is None


async def test_a_big_batch_merges_through_the_pool(client, new_tenant, app):
    assert app.state.settings.offline_check_processes >= 1
    headers, device, items = await _batch(client, new_tenant, batch_pool.POOL_MIN, faults=False)
    try:
        await _warm(app.state.settings.offline_check_processes)
        r = await client.post("/v1/offline/batches", json=device.batch(items), headers=headers)
    finally:
        batch_pool.shutdown()
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["merged"], body["refused"], body["held"]) == (batch_pool.POOL_MIN, 0, 0)
    assert [d["counter"] for d in body["data"]] == list(range(1, batch_pool.POOL_MIN + 1))


def test_a_batch_identity_is_its_body_as_sent():
    """``digest`` builds the dump by hand (speed): it must stay pydantic's, or stored batches' replays change."""
    import hashlib

    import orjson

    for body in [{"credential": "a.b.c", "invoices": [{"request": {"a": 1, "b": [1.5, "x", None]}, "seal": {"p": {}}}]},
                 {"credential": "a.b.c", "invoices": [{"request": {}, "seal": {}, "buyer_salt": None},
                                                      {"request": {"q": "é"}, "seal": {"k": True}, "buyer_salt": "s"}],
                  "return": {"s": 1}},
                 {"credential": "c", "invoices": [{"request": {}, "seal": {}}], "return": None}]:
        model = BatchCreate.model_validate(body)
        dumped = model.model_dump(mode="json", exclude_unset=True, by_alias=True)
        assert dumped == body
        assert batch_service.digest(model) == hashlib.sha256(orjson.dumps(dumped, option=orjson.OPT_SORT_KEYS)).hexdigest()
