"""Returned batches that merge: numbers, the block chain, the Merkle log, the checkpoint, replays."""
from __future__ import annotations

import hashlib

import orjson

from stalela.fiscal.core import merkle
from stalela.offline import batch_service
from stalela.offline.batch_schemas import BatchCreate
from tests.offline.batch_support import new_device, offline_outlet
from tests.support.invoices import sample_invoice


async def test_a_good_batch_merges_in_device_order(client, new_tenant):
    tenant, headers, outlet = await offline_outlet(client, new_tenant)
    online = (await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)).json()
    device = await new_device(client, headers, tenant["id"], outlet["id"])
    items = [device.seal() for _ in range(3)]
    r = await client.post("/v1/offline/batches", json=device.batch(items), headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["merged"], body["refused"], body["held"]) == (3, 0, 0)
    assert [d["counter"] for d in body["data"]] == [2, 3, 4]
    assert [d["outcome"] for d in body["data"]] == ["merged"] * 3
    assert body["block"] == {"next": 5, "head": items[-1]["seal"]["hash"], "closed": False}

    first = body["data"][0]
    invoice = (await client.get(f"/v1/invoices/{first['invoice_id']}", headers=headers)).json()
    assert invoice["seal"] == items[0]["seal"]  # the device's seal, as signed
    assert invoice["counter"] == 2 and invoice["fiscal_number"] == first["fiscal_number"]
    assert invoice["issued_at"] == items[0]["seal"]["payload"]["issued_at"]  # the device's time
    assert invoice["offline"] == {"credential": device.claims["jti"], "block_id": device.claims["block"]["id"],
                                  "device_id": device.claims["sub"], "merged_at": body["received_at"], "late": False,
                                  "business_day": invoice["offline"]["business_day"]}
    assert invoice["sync"]["status"] == "pending"
    # The public page a receipt's QR code opens: authentic, by the device key its credential binds.
    page = (await client.get(f"/verify/{first['invoice_id']}", headers={"Accept": "application/json"})).json()
    assert page["authentic"] is True and page["key_id"] == device.thumbprint, page

    # Leaves in device order, right after the block's record; the checkpoint covers them.
    cp = body["checkpoint"]
    leaves = []
    for d, item in zip(body["data"], items):
        proof = (await client.get(f"/v1/invoices/{d['invoice_id']}/proof", params={"tree_size": cp["tree_size"]},
                                  headers=headers)).json()
        leaves.append(proof["leaf_index"])
        assert proof["root_hash"] == cp["root_hash"]
        assert merkle.verify_inclusion(merkle.leaf_hash(bytes.fromhex(item["seal"]["hash"])), proof["leaf_index"],
                                       cp["tree_size"], [bytes.fromhex(h) for h in proof["audit_path"]],
                                       bytes.fromhex(cp["root_hash"]))
    # online #1, the number_block record, then the three offline invoices
    assert leaves == [2, 3, 4] and cp["tree_size"] == 5
    latest = (await client.get("/v1/ledger/checkpoints/latest", headers=headers)).json()
    assert latest["id"] == cp["id"] and latest["reason"] == "offline_merge"

    # Online numbering continues after the block, untouched by the merge.
    after = (await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)).json()
    assert online["counter"] == 1 and after["counter"] == 12

    # Receipts: one per number, merged.
    receipts = (await client.get("/v1/offline/receipts", params={"block_id": device.claims["block"]["id"]},
                                 headers=headers)).json()
    assert sorted(r["counter"] for r in receipts["data"]) == [2, 3, 4]
    assert {r["outcome"] for r in receipts["data"]} == {"merged"}


async def test_replays_answer_the_same(client, new_tenant):
    tenant, headers, outlet = await offline_outlet(client, new_tenant)
    device = await new_device(client, headers, tenant["id"], outlet["id"])
    items = [device.seal() for _ in range(4)]
    batch = device.batch(items[:2])
    first = await client.post("/v1/offline/batches", json=batch, headers=headers)
    again = await client.post("/v1/offline/batches", json=batch, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()  # stored: the same answer, batch id included
    stored = (await client.get(f"/v1/offline/batches/{first.json()['id']}", headers=headers)).json()
    assert stored == first.json()

    # A new batch repeating merged invoices: their original receipts, then the new ones merge.
    r = (await client.post("/v1/offline/batches", json=device.batch(items), headers=headers)).json()
    assert [d["outcome"] for d in r["data"]] == ["merged"] * 4
    assert [d["replayed"] for d in r["data"]] == [True, True, False, False]
    assert [d["receipt_id"] for d in r["data"][:2]] == [d["receipt_id"] for d in first.json()["data"]]
    assert (r["merged"], r["id"] != first.json()["id"]) == (4, True)
    listed = (await client.get("/v1/invoices", params={"limit": 100}, headers=headers)).json()["data"]
    assert len([i for i in listed if i.get("offline")]) == 4  # nothing merged twice


async def test_the_business_day_of_a_merged_invoice(client, new_tenant):
    """The device time's day while it is open; once a Z closed it, the merge's (here: the next open day)."""
    tenant, headers, outlet = await offline_outlet(client, new_tenant)
    await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)
    device = await new_device(client, headers, tenant["id"], outlet["id"])
    early, late = device.seal(), device.seal()
    r = await client.post("/v1/offline/batches", json=device.batch([early]), headers=headers)
    assert r.json()["merged"] == 1
    x = (await client.get(f"/v1/outlets/{outlet['id']}/x-report", headers=headers)).json()
    assert sum(x["counts"]["by_type"].values()) == 2  # the online invoice and the offline one, one day
    assert x["offline_count"] == 1
    z = await client.post(f"/v1/outlets/{outlet['id']}/z-reports", json={}, headers=headers)
    assert z.status_code == 201, z.text
    r = await client.post("/v1/offline/batches", json=device.batch([early, late]), headers=headers)
    assert r.json()["merged"] == 2
    x = (await client.get(f"/v1/outlets/{outlet['id']}/x-report", headers=headers)).json()
    assert x["business_day"] > z.json()["business_day"] and sum(x["counts"]["by_type"].values()) == 1


async def test_a_batch_can_give_back_the_unused_tail(client, new_tenant):
    from datetime import datetime, timezone

    from stalela.fiscal.core import offline as core
    from stalela.fiscal.core.seal import b64url_encode, canonical_bytes
    from stalela.kit.clock import rfc3339
    from tests.offline.support import es256
    import hashlib

    tenant, headers, outlet = await offline_outlet(client, new_tenant)
    device = await new_device(client, headers, tenant["id"], outlet["id"])
    items = [device.seal(), device.seal()]
    c = device.claims
    payload = core.return_payload(tenant_id=c["tenant_id"], block_id=c["block"]["id"], credential=c["jti"],
                                  first=device.next, last=c["block"]["last"], prev_hash=device.head,
                                  at=rfc3339(datetime.now(timezone.utc)))
    data = canonical_bytes(payload)
    statement = {"payload": payload, "hash": hashlib.sha256(data).hexdigest(),
                 "signature": b64url_encode(es256(device.key, data)), "key_id": device.thumbprint, "algorithm": "ES256"}
    body = (await client.post("/v1/offline/batches", json={**device.batch(items), "return": statement},
                              headers=headers)).json()
    assert body["merged"] == 2 and body["return"]["status"] == 201, body.get("return")
    assert body["return"]["void"]["seal"]["payload"]["reason"] == "returned"
    block = (await client.get(f"/v1/offline/blocks/{c['block']['id']}", headers=headers)).json()
    assert block["status"] == "closed"
    # A statement that does not fit is answered for itself; the invoices still merge.
    other = await new_device(client, headers, tenant["id"], outlet["id"])
    body = (await client.post("/v1/offline/batches", json={**other.batch([other.seal()]), "return": statement},
                              headers=headers)).json()
    assert body["merged"] == 1 and body["return"]["status"] >= 400


def test_a_batch_identity_is_its_body_as_sent():
    """``digest`` builds the dump by hand (speed): it must stay pydantic's, or stored batches' replays change."""
    for body in [{"credential": "a.b.c", "invoices": [{"request": {"a": 1, "b": [1.5, "x", None]}, "seal": {"p": {}}}]},
                 {"credential": "a.b.c", "invoices": [{"request": {}, "seal": {}, "buyer_salt": None},
                                                      {"request": {"q": "é"}, "seal": {"k": True}, "buyer_salt": "s"}],
                  "return": {"s": 1}},
                 {"credential": "c", "invoices": [{"request": {}, "seal": {}}], "return": None}]:
        model = BatchCreate.model_validate(body)
        dumped = model.model_dump(mode="json", exclude_unset=True, by_alias=True)
        assert dumped == body
        assert batch_service.digest(model) == hashlib.sha256(orjson.dumps(dumped, option=orjson.OPT_SORT_KEYS)).hexdigest()

