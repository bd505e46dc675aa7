"""POST /v1/invoices/batch on SQLite and PostgreSQL: per-item results, in order, and nothing consumed
by the items that were rejected."""
from __future__ import annotations

import pytest

from tests.support.invoices import sample_invoice
from tests.support.verify import verify_independently


@pytest.fixture
async def shop(client, new_tenant):
    tenant, headers = await new_tenant("Batch SARL", "A1112223B")
    outlets = [(await client.post("/v1/outlets", json={"code": f"B{n}", "name": f"Till {n}"}, headers=headers)).json()
               for n in range(2)]
    return tenant, headers, outlets


async def _counter(client, headers, outlet_id: str) -> int:
    page = (await client.get("/v1/invoices", params={"outlet_id": outlet_id, "limit": 1}, headers=headers)).json()
    return page["data"][0]["counter"] if page["data"] else 0


async def test_items_are_sealed_in_order_and_rejections_consume_nothing(client, shop):
    _, headers, (a, b) = shop
    items = [
        {"idempotency_key": "k0", "invoice": sample_invoice(a["id"])},
        {"idempotency_key": "k1", "invoice": sample_invoice(a["id"], type="ZZ")},           # a fiscal rule
        {"invoice": sample_invoice(b["id"])},
        {"invoice": {"outlet_id": a["id"], "type": "FV", "lines": "nope"}},                 # the schema
        {"invoice": sample_invoice("out_" + "0" * 26)},                                     # no such outlet
        {"idempotency_key": "k5", "invoice": sample_invoice(a["id"], reference="R-1")},
        {"invoice": sample_invoice(a["id"], reference="R-1")},                              # same reference again
        {"invoice": sample_invoice(b["id"])},
    ]
    r = await client.post("/v1/invoices/batch", json={"items": items}, headers=headers)
    assert r.status_code == 200, r.text
    out = r.json()
    assert [d["index"] for d in out["data"]] == list(range(len(items)))
    assert [d["status"] for d in out["data"]] == [201, 422, 201, 422, 422, 201, 409, 201]
    assert out["sealed"] == 4 and out["rejected"] == 4
    problems = {d["index"]: d["problem"] for d in out["data"] if "problem" in d}
    assert problems[1]["code"] == "invalid_invoice_type" or problems[1]["field"] == "type"
    assert problems[3]["field"].startswith("items[3].invoice.lines")
    assert problems[4]["code"] == "outlet_not_found"
    assert problems[6]["code"] == "reference_already_used"
    sealed = [d["invoice"] for d in out["data"] if d["status"] == 201]
    # Gap-free and chained in the order of the batch, per outlet.
    assert [(i["outlet_id"], i["counter"]) for i in sealed] == [(a["id"], 1), (b["id"], 1), (a["id"], 2), (b["id"], 2)]
    assert sealed[2]["seal"]["payload"]["prev_hash"] == sealed[0]["seal"]["hash"]
    assert sealed[3]["seal"]["payload"]["prev_hash"] == sealed[1]["seal"]["hash"]
    jwk = (await client.get(f"/v1/keys/{sealed[0]['seal']['key_id']}")).json()
    for inv in sealed:
        verify_independently(inv, jwk)
        assert (await client.get(f"/v1/invoices/{inv['id']}", headers=headers)).json()["seal"] == inv["seal"]
    assert await _counter(client, headers, a["id"]) == 2 and await _counter(client, headers, b["id"]) == 2
    # Merkle leaves follow the sealing order.
    proofs = [(await client.get(f"/v1/invoices/{i['id']}/proof", headers=headers)).json()["leaf_index"] for i in sealed]
    assert proofs == sorted(proofs) and len(set(proofs)) == 4


async def test_a_retried_batch_returns_the_original_results(client, shop):
    _, headers, (a, _) = shop
    items = [{"idempotency_key": f"r{n}", "invoice": sample_invoice(a["id"])} for n in range(5)]
    first = (await client.post("/v1/invoices/batch", json={"items": items}, headers=headers)).json()
    again = (await client.post("/v1/invoices/batch", json={"items": items}, headers=headers)).json()
    assert [d["invoice"]["id"] for d in again["data"]] == [d["invoice"]["id"] for d in first["data"]]
    assert all(d["replayed"] for d in again["data"]) and not any(d["replayed"] for d in first["data"])
    # The single endpoint sees the same keys.
    single = await client.post("/v1/invoices", json=sample_invoice(a["id"]), headers=headers | {"Idempotency-Key": "r0"})
    assert single.status_code == 201 and single.headers["Idempotent-Replayed"] == "true"
    assert single.json()["id"] == first["data"][0]["invoice"]["id"]
    assert await _counter(client, headers, a["id"]) == 5


async def test_one_key_twice_in_a_batch(client, shop):
    _, headers, (a, _) = shop
    body = sample_invoice(a["id"])
    items = [{"idempotency_key": "dup", "invoice": body}, {"idempotency_key": "dup", "invoice": body},
             {"idempotency_key": "dup", "invoice": sample_invoice(a["id"], currency="USD")}]
    out = (await client.post("/v1/invoices/batch", json={"items": items}, headers=headers)).json()
    assert [d["status"] for d in out["data"]] == [201, 201, 422]
    assert out["data"][1]["replayed"] and out["data"][1]["invoice"]["id"] == out["data"][0]["invoice"]["id"]
    assert out["data"][2]["problem"]["code"] == "idempotency_key_reused"
    assert await _counter(client, headers, a["id"]) == 1


async def test_credit_notes_in_one_batch_cannot_exceed_their_original(client, shop):
    _, headers, (a, _) = shop
    original = (await client.post("/v1/invoices", json=sample_invoice(a["id"]), headers=headers)).json()
    total = original["totals"]["total"]
    note = sample_invoice(a["id"], type="FA", nature="COR", original=original["fiscal_number"])
    out = (await client.post("/v1/invoices/batch", json={"items": [{"invoice": note}, {"invoice": note}]},
                             headers=headers)).json()
    # Each note credits the whole original: the first passes, the second would exceed it.
    assert [d["status"] for d in out["data"]] == [201, 422], out
    assert out["data"][0]["invoice"]["totals"]["total"] == total
    assert out["data"][1]["problem"]["code"] == "credit_note_exceeds_original"
    assert await _counter(client, headers, a["id"]) == 2


async def test_batch_limits_and_restricted_keys(client, shop, app):
    _, headers, (a, b) = shop
    too_many = {"items": [{"invoice": sample_invoice(a["id"])}] * (app.state.settings.batch_max_invoices + 1)}
    r = await client.post("/v1/invoices/batch", json=too_many, headers=headers)
    assert r.status_code == 422 and r.json()["code"] == "batch_too_large" and r.json()["field"] == "items"
    r = await client.post("/v1/invoices/batch", json={"items": []}, headers=headers)
    assert r.status_code == 422
    till = (await client.post("/v1/api-keys", json={"name": "till", "outlet_id": a["id"]}, headers=headers)).json()
    till_headers = {"Authorization": f"Bearer {till['api_key']}"}
    items = [{"invoice": sample_invoice(a["id"])}, {"invoice": sample_invoice(b["id"])}]
    out = (await client.post("/v1/invoices/batch", json={"items": items}, headers=till_headers)).json()
    assert [d["status"] for d in out["data"]] == [201, 403]
    assert out["data"][1]["problem"]["code"] == "api_key_outlet_restricted"
    assert await _counter(client, headers, b["id"]) == 0
