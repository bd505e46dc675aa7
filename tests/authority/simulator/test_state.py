"""State rules that a client cannot reach over HTTP, and behaviour under concurrency."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import pytest

from stalela.authority.simulator import FaultSpec, create_app
from stalela.authority.simulator.state import Device, SimState
from stalela.authority.simulator.totals import compute_totals
from tests.authority.simulator.support import NIM, invoice

TOTALS = compute_totals([("B", Decimal("1"), Decimal("100"))], "ht")


def test_a_second_effective_confirm_of_one_rn_is_recorded_not_hidden():
    device = Device(NIM, "t")
    state = SimState({NIM: device})
    first = state.create(device, "FV-1", "FV", "A1", TOTALS, 120)
    state._latest.clear()  # simulate a bug that lets the same rn be created twice
    second = state.create(device, "FV-1", "FV", "A1", TOTALS, 120)
    assert first.uid != second.uid
    assert state.confirm(device, first.uid)[1] is True
    assert state.confirm(device, second.uid)[1] is True
    records = state.records()
    assert records["confirm_counts"] == {f"{NIM}/FV-1": 2}
    assert [d["uid"] for d in records["duplicates"]] == [second.uid]


def test_expiry_is_fixed_when_a_request_is_created():
    now = [1000.0]
    device = Device(NIM, "t")
    state = SimState({NIM: device}, clock=lambda: now[0])
    request = state.create(device, "FV-1", "FV", "A1", TOTALS, 10)
    now[0] += 11
    assert state.pending_of(NIM) == []
    assert state.records()["expired"][0]["uid"] == request.uid


def test_the_token_identifies_the_device():
    one, two = Device("N1", "same-prefix-1"), Device("N2", "same-prefix-2")
    state = SimState({"N1": one, "N2": two})
    assert state.authenticate("same-prefix-2") is two
    assert state.authenticate("same-prefix-") is None
    assert state.authenticate("") is None


def test_drop_outside_the_simulator_server_still_fails_the_client():
    # Under a plain ASGI host there is no socket to abort; the drop degrades to an error.
    app = create_app({NIM: "t"}, FaultSpec(drop_rate=1))

    async def call() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
            await client.get("/api/info/status", headers={"Authorization": "Bearer t"})

    with pytest.raises(ConnectionAbortedError):
        asyncio.run(call())


@pytest.mark.e2e
def test_concurrent_creates_and_confirms_fiscalise_once(sim):
    def create(_: int) -> str:
        with sim.client() as c:
            return c.post("/api/invoice", json=invoice("RACE-1")).json()["uid"]

    with ThreadPoolExecutor(8) as pool:
        uids = set(pool.map(create, range(16)))
    assert len(uids) == 1
    uid = uids.pop()

    def confirm(_: int) -> dict:
        with sim.client() as c:
            r = c.put(f"/api/invoice/{uid}/confirm")
            assert r.status_code == 200
            return r.json()

    with ThreadPoolExecutor(8) as pool:
        acks = list(pool.map(confirm, range(16)))
    assert len({a["codeDEFDGI"] for a in acks}) == 1
    assert sim.records()["confirm_counts"] == {f"{NIM}/RACE-1": 1}
