"""The ARCA simulator's faults, seen from a real HTTP client; its controls and its state file."""
from __future__ import annotations

import time

import httpx
import pytest

from stalela.authority.simulator.arca import ArcaFaultSpec, parse_fault_spec
from stalela.authority.simulator.arca.faults import ArcaFaults
from tests.authority.simulator.arca_support import (CUIT, Wsfe, errors, fault, login, receipt,
                                                    val)

pytestmark = pytest.mark.e2e


def test_fault_spec_grammar():
    spec = parse_fault_spec("drop_after_commit=0.25, http500=0.1,latency_ms=200,"
                            "already_authenticated=0.5,seed=7,drop_mode=hang,hang_seconds=2")
    assert spec == ArcaFaultSpec(drop_after_commit=0.25, http500=0.1, latency_ms=200,
                                 already_authenticated=0.5, seed=7, drop_mode="hang",
                                 hang_seconds=2)
    assert parse_fault_spec('{"http500": 1}').http500 == 1
    assert parse_fault_spec("seed=none").seed is None
    for bad in ("http500=2", "drop_after_comit=0.1", "latency_ms=-1", "http500", "drop_mode=x"):
        with pytest.raises(ValueError):
            parse_fault_spec(bad)


def test_seeded_decisions_replay():
    def run() -> list[bool]:
        faults = ArcaFaults(ArcaFaultSpec(http500=0.5, seed=11))
        return [faults.http500() for _ in range(40)]

    first = run()
    assert first == run() and 5 < sum(first) < 35
    # Forcing a fault consumes the same draw: the rest of the sequence is unchanged.
    faults = ArcaFaults(ArcaFaultSpec(http500=0.5, seed=11))
    faults.force("http500")
    assert [faults.http500() for _ in range(40)] == [True] + first[1:]


def test_http500_answers_a_server_fault_and_does_nothing(make_arca, arca_identity):
    sim = make_arca()
    token, sign = login(sim.url, arca_identity)
    wsfe = Wsfe(sim.url, token, sign)
    try:
        sim.set_faults(http500=1)
        r = wsfe.post("FECAESolicitar", f"{wsfe.auth()}<FeCAEReq/>")
        assert r.status_code == 500 and fault(r)[0] == "soap:Server"
        assert wsfe.post("FEDummy", "").status_code == 500
        sim.set_faults()
        assert val(wsfe.last(), "CbteNro") == "0"
        assert sim.state()["counts"]["fault.http500"] == 2
    finally:
        wsfe.close()


def test_latency_is_added_to_every_wsfe_call(make_arca):
    sim = make_arca(faults=ArcaFaultSpec(latency_ms=300))
    wsfe = Wsfe(sim.url)
    try:
        started = time.monotonic()
        wsfe.call("FEDummy")
        assert time.monotonic() - started >= 0.3
    finally:
        wsfe.close()


def test_forced_drop_after_commit_stores_the_cae_and_closes_the_connection(wsfe, arca):
    arca.force_next("drop_after_commit")
    # A rejected request commits nothing, so the forced drop waits for one that does.
    assert errors(wsfe.solicitar(receipt(2))) == [10016]
    with pytest.raises(httpx.RemoteProtocolError):
        wsfe.post("FECAESolicitar", _solicitar_inner(wsfe, 1))
    caes = arca.caes(CUIT, 3, 6)
    assert list(caes) == [1] and arca.sim.faults.forced() == {}
    # The client recovers: ARCA knows the receipt, and a resend of the number is a 10016.
    assert val(wsfe.last(), "CbteNro") == "1"
    assert val(wsfe.consultar(1), "ResultGet/CodAutorizacion") == caes[1]
    assert errors(wsfe.solicitar(receipt(1))) == [10016]
    assert val(wsfe.solicitar(receipt(2)), "FeCabResp/Resultado") == "A"
    state = arca.state()
    assert state["series"][f"{CUIT}/3/6"]["last"] == 2
    assert [r["number"] for r in state["series"][f"{CUIT}/3/6"]["receipts"]] == [1, 2]
    assert state["counts"]["fault.drop_after_commit"] == 1


def test_drop_after_commit_hang_holds_past_the_client_timeout(make_arca, arca_identity):
    sim = make_arca(faults=ArcaFaultSpec(drop_after_commit=1, drop_mode="hang",
                                         hang_seconds=1.5))
    token, sign = login(sim.url, arca_identity)
    wsfe = Wsfe(sim.url, token, sign, timeout=0.4)
    try:
        with pytest.raises(httpx.ReadTimeout):
            wsfe.post("FECAESolicitar", _solicitar_inner(wsfe, 1))
        assert list(sim.caes(CUIT, 3, 6)) == [1]
    finally:
        wsfe.close()


def test_drop_after_commit_rate_from_the_spec(make_arca, arca_identity):
    sim = make_arca(faults=ArcaFaultSpec(drop_after_commit=1))
    token, sign = login(sim.url, arca_identity)
    wsfe = Wsfe(sim.url, token, sign)
    try:
        for number in (1, 2):
            with pytest.raises(httpx.RemoteProtocolError):
                wsfe.post("FECAESolicitar", _solicitar_inner(wsfe, number))
        assert list(sim.caes(CUIT, 3, 6)) == [1, 2]
    finally:
        wsfe.close()


def test_controls_over_http(arca):
    url = arca.url + "/_sim"
    assert httpx.put(f"{url}/faults", json={"http500": 0.5, "seed": 3}).json()["http500"] == 0.5
    r = httpx.put(f"{url}/faults", json={"http500": 5})
    assert r.status_code == 400 and "http500" in r.json()["error"]
    r = httpx.post(f"{url}/faults/force", json={"fault": "drop_after_commit", "times": 2})
    assert r.json() == {"forced": {"drop_after_commit": 2}}
    assert httpx.get(f"{url}/faults").json()["forced"] == {"drop_after_commit": 2}
    assert httpx.post(f"{url}/faults/force", json={"fault": "nope"}).status_code == 400
    assert httpx.put(f"{url}/series/{CUIT}/3/6", json={"last": -1}).status_code == 400
    before = httpx.get(f"{url}/state").json()["now"]
    after = httpx.post(f"{url}/clock", json={"advance_seconds": 86400}).json()["now"]
    assert after[:10] > before[:10]
    assert httpx.post(f"{url}/clock", json={"advance_seconds": -1}).status_code == 400
    assert httpx.post(f"{url}/reset").json() == {"reset": True}


def test_state_file_survives_a_restart(make_arca, arca_identity, tmp_path):
    path = str(tmp_path / "arca.json")
    sim = make_arca(state_file=path)
    token, sign = login(sim.url, arca_identity)
    wsfe = Wsfe(sim.url, token, sign)
    try:
        assert val(wsfe.solicitar(receipt(1)), "FeCabResp/Resultado") == "A"
    finally:
        wsfe.close()
    cae = sim.caes(CUIT, 3, 6)[1]
    sim.stop()
    again = make_arca(state_file=path)
    wsfe = Wsfe(again.url, token, sign)  # the ticket survives too
    try:
        assert val(wsfe.last(), "CbteNro") == "1"
        assert val(wsfe.consultar(1), "ResultGet/CodAutorizacion") == cae
    finally:
        wsfe.close()


def _solicitar_inner(wsfe: Wsfe, number: int) -> str:
    return (f"{wsfe.auth()}<FeCAEReq><FeCabReq><CantReg>1</CantReg><PtoVta>3</PtoVta>"
            f"<CbteTipo>6</CbteTipo></FeCabReq><FeDetReq>{receipt(number)}</FeDetReq></FeCAEReq>")
