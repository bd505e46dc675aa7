"""The e-MCF protocol over real HTTP: shapes, totals, the two phases and their edge cases."""
from __future__ import annotations

import json
import re
import time
from datetime import datetime

import httpx
import pytest

from tests.authority.simulator.support import NIF, NIM, TOKEN, invoice, item

pytestmark = pytest.mark.e2e


def create(client: httpx.Client, body: dict) -> dict:
    r = client.post("/api/invoice", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def confirm(client: httpx.Client, uid: str) -> dict:
    r = client.put(f"/api/invoice/{uid}/confirm")
    assert r.status_code == 200, r.text
    return r.json()


def test_status_of_a_fresh_device(client):
    r = client.get("/api/info/status")
    assert r.status_code == 200
    assert r.json() == {"status": True, "version": "1.0-sim", "nim": NIM, "nif": NIF,
                        "tokenValid": True, "pendingRequestsCount": 0, "pendingRequestsList": []}


def test_create_then_confirm_ht(client, sim):
    body = invoice("FV-100", [item("B", "50000.00", 2), item("C", "12345.67"),
                              item("A", 0.335, 3)])
    created = create(client, body)
    assert set(created) == {"uid", "rn", "totals", "total", "vtotal", "created"}
    assert re.fullmatch(r"[0-9a-f]{32}", created["uid"])
    assert created["rn"] == "FV-100"
    assert created["totals"] == {
        "A": {"amount": "1.01", "base": "1.01", "vat": "0.00"},
        "B": {"amount": "100000.00", "base": "100000.00", "vat": "16000.00"},
        "C": {"amount": "12345.67", "base": "12345.67", "vat": "987.65"},
    }
    assert (created["total"], created["vtotal"]) == ("129334.33", "16987.65")
    datetime.fromisoformat(created["created"])

    status = client.get("/api/info/status").json()
    assert status["pendingRequestsCount"] == 1
    assert status["pendingRequestsList"] == [
        {"uid": created["uid"], "rn": "FV-100", "created": created["created"]}]

    ack = confirm(client, created["uid"])
    assert set(ack) == {"uid", "rn", "dateTime", "qrCode", "codeDEFDGI", "counters", "nim"}
    assert (ack["uid"], ack["rn"], ack["nim"], ack["counters"]) == (
        created["uid"], "FV-100", NIM, "1/1")
    assert re.fullmatch(r"[A-Z0-9]{24}", ack["codeDEFDGI"])
    stamp = datetime.fromisoformat(ack["dateTime"])
    assert ack["qrCode"] == f"RDCDEF01;{NIM};{ack['codeDEFDGI']};{NIF};{stamp:%Y%m%d%H%M%S}"
    assert client.get("/api/info/status").json()["pendingRequestsCount"] == 0

    records = sim.records()
    assert records["confirm_counts"] == {f"{NIM}/FV-100": 1}
    assert records["confirmed"] == [{
        "nim": NIM, "rn": "FV-100", "uid": created["uid"], "codeDEFDGI": ack["codeDEFDGI"],
        "counters": "1/1", "type": "FV", "total": "129334.33",
        "confirmed_at": records["confirmed"][0]["confirmed_at"]}]
    assert records["pending"] == [] and records["duplicates"] == []


def test_ttc_and_groups_m_n_f_g(client):
    ttc = create(client, invoice("T-1", [item("B", "109400.00"), item("C", "108.00")],
                                 mode="ttc"))
    assert ttc["totals"]["B"] == {"amount": "109400.00", "base": "94310.34", "vat": "15089.66"}
    assert (ttc["total"], ttc["vtotal"]) == ("109508.00", "15097.66")

    mn = create(client, invoice("T-2", [item("M", "1000", 2), item("N", "160")], mode="ttc"))
    assert mn["totals"] == {"M": {"amount": "2000.00", "base": "2000.00", "vat": "0.00"},
                            "N": {"amount": "160.00", "base": "0.00", "vat": "160.00"}}
    assert (mn["total"], mn["vtotal"]) == ("2160.00", "160.00")

    fg = create(client, invoice("T-3", [item("F", "1160"), item("G", "540")], mode="ttc"))
    assert fg["totals"]["F"] == {"amount": "1160.00", "base": "1000.00", "vat": "160.00"}
    assert fg["totals"]["G"] == {"amount": "540.00", "base": "500.00", "vat": "40.00"}
    assert (fg["total"], fg["vtotal"]) == ("1700.00", "200.00")


def test_json_numbers_are_read_as_decimals(client):
    # As a binary float 1.005 is 1.00499999..., which would round to 1.00.
    content = json.dumps(invoice("D-1", [item("A", "0")])).replace('"price": "0"',
                                                                   '"price": 1.005')
    assert '"price": 1.005' in content
    r = client.post("/api/invoice", content=content, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json()["total"] == "1.01"


def test_counters_per_type_and_per_device(make_sim):
    sim = make_sim({NIM: TOKEN, "SIM00002": "token-two"}, nifs={})
    seen = []
    with sim.client() as one, sim.client("token-two") as two:
        for rn, kind in [("1", "FV"), ("2", "FV"), ("3", "FA"), ("4", "FV")]:
            seen.append(confirm(one, create(one, invoice(rn, type=kind))["uid"])["counters"])
        other = confirm(two, create(two, invoice("1"))["uid"])
    assert seen == ["1/1", "2/2", "1/3", "3/4"]
    assert other["counters"] == "1/1" and other["nim"] == "SIM00002"


def test_confirm_is_idempotent(client, sim):
    uid = create(client, invoice())["uid"]
    first = confirm(client, uid)
    assert confirm(client, uid) == first
    assert sim.records()["confirm_counts"] == {f"{NIM}/FV-1": 1}


def test_create_of_a_confirmed_rn_answers_409_with_the_ack(client):
    ack = confirm(client, create(client, invoice())["uid"])
    r = client.post("/api/invoice", json=invoice())
    assert r.status_code == 409
    body = r.json()
    assert body["errorCode"] == "RN_ALREADY_CONFIRMED" and body["errorDesc"]
    for key in ("uid", "codeDEFDGI", "counters", "nim", "dateTime", "qrCode"):
        assert body[key] == ack[key]


def test_create_of_a_pending_rn_returns_the_same_request(client):
    first = create(client, invoice())
    again = create(client, invoice())
    assert again["uid"] == first["uid"] and again["total"] == first["total"]
    assert client.get("/api/info/status").json()["pendingRequestsCount"] == 1


def test_ten_pending_requests_at_most(client):
    uids = [create(client, invoice(f"P-{n}"))["uid"] for n in range(10)]
    r = client.post("/api/invoice", json=invoice("P-10"))
    assert r.status_code == 429 and r.json()["errorCode"] == "TOO_MANY_PENDING"
    # A retried create of a request already pending is not a new one.
    assert create(client, invoice("P-3"))["uid"] == uids[3]
    assert client.put(f"/api/invoice/{uids[0]}/cancel").status_code == 200
    create(client, invoice("P-10"))


def test_expired_requests(make_sim):
    from stalela.authority.simulator import FaultSpec

    sim = make_sim(faults=FaultSpec(expiry_seconds=0.3))
    with sim.client() as client:
        first = create(client, invoice())
        other = create(client, invoice("FV-2"))
        time.sleep(0.5)
        status = client.get("/api/info/status").json()
        assert status["pendingRequestsCount"] == 0 and status["pendingRequestsList"] == []
        r = client.put(f"/api/invoice/{first['uid']}/confirm")
        assert r.status_code == 410 and r.json()["errorCode"] == "EXPIRED"
        assert client.put(f"/api/invoice/{other['uid']}/cancel").status_code == 410
        # The seller may try again: the rn gets a fresh request.
        fresh = create(client, invoice())
        assert fresh["uid"] != first["uid"]
        assert confirm(client, fresh["uid"])["counters"] == "1/1"
    records = sim.records()
    assert {r["uid"] for r in records["expired"]} == {first["uid"], other["uid"]}
    assert records["confirm_counts"] == {f"{NIM}/FV-1": 1}


def test_cancel(client, sim):
    uid = create(client, invoice())["uid"]
    for _ in range(2):  # idempotent
        r = client.put(f"/api/invoice/{uid}/cancel")
        assert r.status_code == 200 and r.json() == {"uid": uid, "status": "cancelled"}
    r = client.put(f"/api/invoice/{uid}/confirm")
    assert r.status_code == 409 and r.json()["errorCode"] == "CANCELLED"
    assert sim.records()["cancelled"][0]["uid"] == uid
    again = create(client, invoice())
    assert again["uid"] != uid
    confirm(client, again["uid"])
    r = client.put(f"/api/invoice/{again['uid']}/cancel")
    assert r.status_code == 409 and r.json()["errorCode"] == "ALREADY_CONFIRMED"


def test_unknown_uid_and_another_devices_uid(make_sim):
    sim = make_sim({NIM: TOKEN, "SIM00002": "token-two"}, nifs={})
    with sim.client() as one, sim.client("token-two") as two:
        r = one.put("/api/invoice/" + "0" * 32 + "/confirm")
        assert r.status_code == 404 and r.json()["errorCode"] == "UNKNOWN_UID"
        uid = create(one, invoice())["uid"]
        assert two.put(f"/api/invoice/{uid}/confirm").status_code == 404
        assert two.put(f"/api/invoice/{uid}/cancel").status_code == 404


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic abc"},
                                     {"Authorization": "Bearer"},
                                     {"Authorization": "Bearer nope"}])
def test_401_without_a_valid_token(sim, headers):
    r = sim.control.get("/api/info/status", headers=headers)
    assert r.status_code == 401
    assert r.json()["errorCode"] == "UNAUTHORIZED" and r.json()["errorDesc"]
    assert sim.control.post("/api/invoice", json=invoice(), headers=headers).status_code == 401


def test_revoke_and_restore(sim, client):
    assert sim.control.put(f"/_sim/devices/{NIM}/revoke").json() == {"nim": NIM,
                                                                         "revoked": True}
    r = client.get("/api/info/status")
    assert r.status_code == 401 and r.json()["errorCode"] == "UNAUTHORIZED"
    assert sim.control.put(f"/_sim/devices/{NIM}/restore").status_code == 200
    assert client.get("/api/info/status").status_code == 200
    assert sim.control.put("/_sim/devices/NOPE/revoke").status_code == 404


def test_devices_added_at_run_time(sim):
    r = sim.control.put("/_sim/devices/SIM00009", json={"token": "t9", "nif": "B9"})
    assert r.status_code == 200
    with sim.client("t9") as c:
        assert c.get("/api/info/status").json()["nif"] == "B9"


def _bad(**changes):
    body = invoice()
    body.update(changes)
    return body


@pytest.mark.parametrize("body", [
    _bad(items=[]),
    _bad(items=[item("Z")]),
    _bad(items=[item("B", type="XYZ")]),
    _bad(items=[item("B", quantity=0)]),
    _bad(items=[item("B", quantity="-1")]),
    _bad(items=[item("B", price="-1")]),
    _bad(items=[item("B", price="NaN")]),
    _bad(items=[item("B", type="TAX")]),  # levy lines only in L or N
    _bad(items=[item("N", type="BIE")]),
    _bad(mode="net"),
    _bad(type="XX"),
    _bad(rn=""),
    _bad(client={"type": "PM", "name": "SARL"}),  # a company needs its NIF
    _bad(client={"type": "ZZ"}),
    _bad(payment=[{"name": "BITCOIN", "amount": "1"}]),
    _bad(operator=None),
    _bad(nif="SOMEONE-ELSE"),  # not the device's taxpayer
], ids=lambda b: "")
def test_invalid_requests_are_400(client, body, sim):
    r = client.post("/api/invoice", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["errorCode"] == "INVALID_REQUEST" and r.json()["errorDesc"]
    assert sim.records()["pending"] == []


def test_not_json_is_400(client):
    r = client.post("/api/invoice", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["errorCode"] == "INVALID_REQUEST"


def test_full_body_with_client_payment_currency_and_reference(client):
    body = invoice("FA-1", [item("B", "10.00", "1.5"), item("E", "3", 2, type="SER")],
                   type="FA", client={"type": "PM", "name": "Client SARL", "nif": "C999"},
                   payment=[{"name": "MOBILEMONEY", "amount": 20.4}], reference="FV-99",
                   curCode="USD", curRate="2850.5", taxSpecificAmount=None)
    created = create(client, body)
    assert created["total"] == "23.40"  # 15.00 + 2.40 VAT + 6.00
    assert confirm(client, created["uid"])["counters"] == "1/1"


def test_reset_clears_records_but_keeps_devices(client, sim):
    confirm(client, create(client, invoice())["uid"])
    assert sim.control.post("/_sim/reset").json() == {"reset": True}
    assert sim.records()["confirmed"] == [] and sim.records()["confirm_counts"] == {}
    assert confirm(client, create(client, invoice())["uid"])["counters"] == "1/1"


def test_state_file_survives_a_restart(make_sim, tmp_path):
    path = tmp_path / "sim.json"
    first = make_sim(state_file=str(path))
    with first.client() as client:
        ack = confirm(client, create(client, invoice())["uid"])
        pending = create(client, invoice("FV-2"))
    first.stop()

    second = make_sim(state_file=str(path))
    with second.client() as client:
        r = client.post("/api/invoice", json=invoice())
        assert r.status_code == 409 and r.json()["codeDEFDGI"] == ack["codeDEFDGI"]
        assert create(client, invoice("FV-2"))["uid"] == pending["uid"]
        assert confirm(client, pending["uid"])["counters"] == "2/2"
    assert second.records()["confirm_counts"] == {f"{NIM}/FV-1": 1, f"{NIM}/FV-2": 1}


def test_unknown_paths_answer_json(client):
    r = client.get("/api/nothing")
    assert r.status_code == 404 and r.json()["errorCode"] == "NOT_FOUND"


def test_controls_need_no_auth(sim):
    assert sim.control.get("/_sim/records").status_code == 200
    assert sim.control.get("/_sim/faults").status_code == 200
