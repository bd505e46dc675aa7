"""Every injected fault is observable from a real HTTP client, and reproducible by seed."""
from __future__ import annotations

import time

import httpx
import pytest

from stalela.authority.simulator import FaultSpec, parse_fault_spec
from stalela.authority.simulator.faults import FaultInjector
from tests.authority.simulator.support import NIM, invoice, item

pytestmark = pytest.mark.e2e

NOTHING_HAPPENED = {"confirmed": [], "confirm_counts": {}, "duplicates": [], "errors": {}, "pending": [],
                    "expired": [], "cancelled": []}


def test_error_rate_answers_503_before_doing_anything(make_sim):
    sim = make_sim(faults=FaultSpec(error_rate=1))
    with sim.client() as client:
        r = client.post("/api/invoice", json=invoice())
        assert r.status_code == 503 and r.json()["errorCode"] == "UNAVAILABLE"
        # Even a bad token gets the outage: the fault strikes before authentication.
    assert sim.control.get("/api/info/status").status_code == 503
    assert sim.records() == NOTHING_HAPPENED | {"errors": {"UNAVAILABLE": 2}}


def test_timeout_rate_holds_the_answer_and_does_nothing(make_sim):
    sim = make_sim(faults=FaultSpec(timeout_rate=1, timeout_seconds=0.6))
    with sim.client(timeout=0.2) as client, pytest.raises(httpx.ReadTimeout):
        client.post("/api/invoice", json=invoice())
    with sim.client(timeout=5) as client:
        started = time.monotonic()
        r = client.post("/api/invoice", json=invoice())
        assert time.monotonic() - started >= 0.6
        assert r.status_code == 504 and r.json()["errorCode"] == "TIMEOUT"
    assert sim.records() == NOTHING_HAPPENED | {"errors": {"TIMEOUT": 2}}


def test_timeout_after_confirm_takes_effect(make_sim):
    sim = make_sim()
    with sim.client() as client:
        uid = client.post("/api/invoice", json=invoice()).json()["uid"]
    sim.set_faults(timeout_after_confirm_rate=1, timeout_seconds=1.5)
    with sim.client(timeout=0.3) as client, pytest.raises(httpx.ReadTimeout):
        client.put(f"/api/invoice/{uid}/confirm")
    records = sim.records()
    assert [r["uid"] for r in records["confirmed"]] == [uid]
    assert records["confirm_counts"] == {f"{NIM}/FV-1": 1}
    with sim.client(timeout=1) as client:
        # The client recovers promptly: a replayed confirm, or the create's 409, has the ack.
        ack = client.put(f"/api/invoice/{uid}/confirm").json()
        assert ack["codeDEFDGI"] == records["confirmed"][0]["codeDEFDGI"]
        r = client.post("/api/invoice", json=invoice())
        assert r.status_code == 409 and r.json()["codeDEFDGI"] == ack["codeDEFDGI"]
    assert sim.records()["confirm_counts"] == {f"{NIM}/FV-1": 1}


def test_drop_closes_the_connection_without_an_answer(make_sim):
    sim = make_sim(faults=FaultSpec(drop_rate=1))
    with sim.client() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/api/invoice", json=invoice())
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/api/info/status")
    assert sim.records() == NOTHING_HAPPENED
    sim.set_faults()
    with sim.client() as client:  # the server itself is fine afterwards
        assert client.get("/api/info/status").status_code == 200


def test_drop_after_confirm_takes_effect(make_sim):
    sim = make_sim()
    with sim.client() as client:
        uid = client.post("/api/invoice", json=invoice()).json()["uid"]
        sim.set_faults(drop_after_confirm_rate=1)
        with pytest.raises(httpx.RemoteProtocolError):
            client.put(f"/api/invoice/{uid}/confirm")
        assert [r["uid"] for r in sim.records()["confirmed"]] == [uid]
        assert client.put(f"/api/invoice/{uid}/confirm").status_code == 200


def test_mismatch_skews_the_answer_not_the_record(make_sim):
    sim = make_sim(faults=FaultSpec(mismatch_rate=1))
    with sim.client() as client:
        created = client.post("/api/invoice",
                              json=invoice(items=[item("B", "100.00"), item("A", "10")])).json()
        assert created["totals"]["A"] == {"amount": "10.00", "base": "10.00", "vat": "1.00"}
        assert created["totals"]["B"] == {"amount": "100.00", "base": "100.00", "vat": "16.00"}
        assert (created["total"], created["vtotal"]) == ("127.00", "17.00")  # true: 126.00, 16.00
        # The seller's answer to a mismatch: cancel.
        assert client.put(f"/api/invoice/{created['uid']}/cancel").status_code == 200
    assert sim.records()["cancelled"][0]["total"] == "126.00"


def test_latency_is_added_to_every_api_request(make_sim):
    sim = make_sim(faults=FaultSpec(latency_ms=300))
    with sim.client() as client:
        started = time.monotonic()
        assert client.get("/api/info/status").status_code == 200
        assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    sim.records()  # the test controls are not slowed down
    assert time.monotonic() - started < 0.3


def test_faults_change_at_run_time(sim, client):
    assert client.get("/api/info/status").status_code == 200
    sim.set_faults(error_rate=1, seed=3)
    assert sim.control.get("/_sim/faults").json()["error_rate"] == 1
    assert sim.control.get("/_sim/faults").json()["seed"] == 3
    assert client.get("/api/info/status").status_code == 503
    sim.set_faults()
    assert sim.control.get("/_sim/faults").json() == FaultSpec().model_dump()
    assert client.get("/api/info/status").status_code == 200


@pytest.mark.parametrize("spec", [{"error_rate": 2}, {"error_rat": 0.1},
                                  {"error_rate": 0.6, "drop_rate": 0.6},
                                  {"expiry_seconds": 0}])
def test_invalid_fault_specs_are_refused(sim, spec):
    r = sim.control.put("/_sim/faults", json=spec)
    assert r.status_code == 400 and r.json()["errorCode"] == "INVALID_REQUEST"
    assert sim.control.get("/_sim/faults").json() == FaultSpec().model_dump()


def test_a_seed_replays_the_same_outcomes(sim, client):
    def run() -> list[int]:
        sim.set_faults(error_rate=0.4, seed=1234)
        return [client.get("/api/info/status").status_code for _ in range(30)]

    first = run()
    assert set(first) == {200, 503}
    assert run() == first


def test_decisions_are_exclusive_slices_of_one_draw():
    injector = FaultInjector(FaultSpec(error_rate=0.2, timeout_rate=0.3, drop_rate=0.1, seed=9))
    outcomes = [injector.before_request() for _ in range(10000)]
    share = {k: outcomes.count(k) / len(outcomes) for k in ("error", "timeout", "drop", None)}
    assert share["error"] == pytest.approx(0.2, abs=0.02)
    assert share["timeout"] == pytest.approx(0.3, abs=0.02)
    assert share["drop"] == pytest.approx(0.1, abs=0.02)
    assert share[None] == pytest.approx(0.4, abs=0.02)
    again = FaultInjector(FaultSpec(error_rate=0.2, timeout_rate=0.3, drop_rate=0.1, seed=9))
    assert [again.before_request() for _ in range(10000)] == outcomes


def test_fault_spec_syntax():
    spec = parse_fault_spec("error_rate=0.1, latency_ms=20,drop_rate=0.05,seed=7")
    assert (spec.error_rate, spec.latency_ms, spec.drop_rate, spec.seed) == (0.1, 20, 0.05, 7)
    assert spec.timeout_seconds == 30 and spec.expiry_seconds == 120
    assert parse_fault_spec('{"mismatch_rate": 0.5}').mismatch_rate == 0.5
    assert parse_fault_spec("") == FaultSpec()
    for bad in ("error_rate", "nope=1", "error_rate=x", "error_rate=0.7,timeout_rate=0.7"):
        with pytest.raises(ValueError):
            parse_fault_spec(bad)
