"""Invoices the block's chain cannot place, or that are not provably the device's: held, nothing recorded,
and merged once the batch comes back right."""
from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec

from tests.offline.batch_support import new_device, offline_outlet


async def _post(client, headers, batch):  # noqa: ANN001, ANN202
    r = await client.post("/v1/offline/batches", json=batch, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def _outcomes(body):  # noqa: ANN001, ANN202
    return [(d["outcome"], d.get("code")) for d in body["data"]]


async def _tree_size(client, headers) -> int:  # noqa: ANN001
    r = await client.post("/v1/ledger/checkpoints", headers=headers)
    return r.json()["tree_size"]


async def test_one_invoice_dropped_is_held_then_everything_merges(client, new_tenant):
    tenant, headers, outlet = await offline_outlet(client, new_tenant)
    device = await new_device(client, headers, tenant["id"], outlet["id"])
    items = [device.seal() for _ in range(4)]
    body = await _post(client, headers, device.batch([items[0], items[2], items[3]]))
    assert _outcomes(body) == [("merged", None), ("held", "offline_number_gap"), ("held", "offline_number_gap")]
    first = device.claims["block"]["first"]
    assert body["data"][1]["expected"] == {"next": first + 1, "head": items[0]["seal"]["hash"], "closed": False}
    # Re-uploaded with the missing one: the merged one answers its receipt, the rest merges.
    again = await _post(client, headers, device.batch(items))
    assert [d["outcome"] for d in again["data"]] == ["merged"] * 4
    assert [d["replayed"] for d in again["data"]] == [True, False, False, False]
    # The first batch, sent again, is tried again (it had held invoices): now its invoices all answer receipts.
    retried = await _post(client, headers, device.batch([items[0], items[2], items[3]]))
    assert retried["id"] == body["id"] and [d["outcome"] for d in retried["data"]] == ["merged"] * 3


async def test_two_invoices_swapped(client, new_tenant):
    tenant, headers, outlet = await offline_outlet(client, new_tenant)
    device = await new_device(client, headers, tenant["id"], outlet["id"])
    a, b, c = (device.seal() for _ in range(3))
    body = await _post(client, headers, device.batch([a, c, b]))
    # c comes before its number: held; b still fits right after a.
    assert _outcomes(body) == [("merged", None), ("held", "offline_number_gap"), ("merged", None)]
    assert _outcomes(await _post(client, headers, device.batch([c]))) == [("merged", None)]
    # Swapping the numbers themselves breaks the device's signatures.
    d, e = device.seal(), device.seal()
    d["seal"]["payload"]["counter"], e["seal"]["payload"]["counter"] = e["seal"]["payload"]["counter"], d["seal"]["payload"]["counter"]
    assert {code for _, code in _outcomes(await _post(client, headers, device.batch([e, d])))} == {"offline_signature_invalid"}


async def test_a_byte_changed_in_the_signed_payload(client, new_tenant):
    tenant, headers, outlet = await offline_outlet(client, new_tenant)
    device = await new_device(client, headers, tenant["id"], outlet["id"])
    items = [device.seal() for _ in range(3)]
    forged = {**items[1], "seal": {**items[1]["seal"], "payload": {**items[1]["seal"]["payload"], "total": "1.00"}}}
    size = await _tree_size(client, headers)
    body = await _post(client, headers, device.batch([items[0], forged, items[2]]))
    assert _outcomes(body) == [("merged", None), ("held", "offline_signature_invalid"), ("held", "offline_number_gap")]
    assert await _tree_size(client, headers) == size + 1  # only the merged one: a forgery uses no number
    assert [d["outcome"] for d in (await _post(client, headers, device.batch(items)))["data"]] == ["merged"] * 3


async def test_a_wrong_cnf_key_merges_nothing(client, new_tenant):
    tenant, headers, outlet = await offline_outlet(client, new_tenant)
    device = await new_device(client, headers, tenant["id"], outlet["id"])
    other = ec.generate_private_key(ec.SECP256R1())
    size = await _tree_size(client, headers)
    items = [device.seal(key=other) for _ in range(3)]
    body = await _post(client, headers, device.batch(items))
    assert {d["outcome"] for d in body["data"]} == {"held"}
    assert body["data"][0]["code"] == "offline_signature_invalid" and body["checkpoint"] is None
    assert await _tree_size(client, headers) == size
    receipts = (await client.get("/v1/offline/receipts", params={"block_id": device.claims["block"]["id"]},
                                 headers=headers)).json()
    assert receipts["data"] == []


async def test_numbers_outside_the_block_and_another_credential(client, new_tenant):
    tenant, headers, outlet = await offline_outlet(client, new_tenant)
    device = await new_device(client, headers, tenant["id"], outlet["id"], block_size=2)
    items = [device.seal() for _ in range(3)]
    body = await _post(client, headers, device.batch(items))
    assert _outcomes(body) == [("merged", None), ("merged", None), ("held", "offline_number_outside_block")]
    assert body["block"]["closed"] is True
    # The same device's next credential: its invoices are not the first credential's to return.
    second = await new_device(client, headers, tenant["id"], outlet["id"], block_size=2)
    wrong = second.batch([second.seal()])
    wrong["credential"] = device.credential
    body = await _post(client, headers, wrong)
    assert _outcomes(body)[0][1] in ("offline_signature_invalid", "offline_credential_mismatch")


async def test_the_credential_is_checked(client, new_tenant):
    tenant, headers, outlet = await offline_outlet(client, new_tenant)
    device = await new_device(client, headers, tenant["id"], outlet["id"])
    batch = device.batch([device.seal()])
    header, claims, signature = device.credential.split(".")
    for token, code in ((f"{header}.{claims}.{signature[:-4]}AAAA", "credential_signature"),
                        ("eyJhbGciOiJub25lIn0.e30.", "credential_algorithm"), ("nope", "credential_malformed")):
        r = await client.post("/v1/offline/batches", json={**batch, "credential": token}, headers=headers)
        assert (r.status_code, r.json()["code"]) == (422, code), r.text
    # Another tenant cannot return this tenant's invoices: its keys do not know the credential's issuer.
    _, other_headers, _ = await offline_outlet(client, new_tenant)
    r = await client.post("/v1/offline/batches", json=batch, headers=other_headers)
    assert (r.status_code, r.json()["code"]) == (422, "credential_issuer_unknown")
    # An outlet-restricted key of another outlet may not return them.
    shop2 = (await client.post("/v1/outlets", json={"code": "TWO", "name": "Two"}, headers=headers)).json()
    key = (await client.post("/v1/api-keys", json={"name": "till", "outlet_id": shop2["id"]}, headers=headers)).json()
    r = await client.post("/v1/offline/batches", json=batch, headers={"Authorization": f"Bearer {key['api_key']}"})
    assert (r.status_code, r.json()["code"]) == (403, "api_key_outlet_restricted"), r.text
