"""Double use proven: a different invoice at a used number is a 409 with a fork proof anyone can check with
the tenant's public keys, and the credential is revoked, committed although nothing of the batch merges."""
from __future__ import annotations

from stalela.offline import fork_proofs
from tests.offline.batch_support import Device, new_device, offline_outlet


async def _jwks(client):  # noqa: ANN001, ANN202
    return {k["kid"]: k for k in (await client.get("/.well-known/jwks.json")).json()["keys"]}.get


async def test_a_second_invoice_at_a_merged_number_is_a_fork(client, new_tenant):
    tenant, headers, outlet = await offline_outlet(client, new_tenant)
    device = await new_device(client, headers, tenant["id"], outlet["id"])
    first, second = device.seal(), device.seal()
    r = await client.post("/v1/offline/batches", json=device.batch([first, second]), headers=headers)
    assert r.json()["merged"] == 2

    # A clone of the device (a restored backup) seals another invoice at the second number, then goes on.
    clone = Device(device.key, device.credential)
    clone.seal()
    other = clone.seal()
    later = clone.seal()
    batch = device.batch([first, other, later])
    r = await client.post("/v1/offline/batches", json=batch, headers=headers)
    assert r.status_code == 409, r.text
    problem = r.json()
    assert problem["code"] == "offline_number_reused" and problem["counter"] == second["seal"]["payload"]["counter"]
    proof = problem["fork_proof"]
    body = proof["seal"]["payload"]
    assert (body["first"]["hash"], body["second"]["hash"]) == (second["seal"]["hash"], other["seal"]["hash"])
    assert fork_proofs.check(proof["seal"], await _jwks(client)) is None
    # A tampered proof does not hold.
    forged = {**proof["seal"], "payload": {**body, "counter": body["counter"] + 1}}
    assert fork_proofs.check(forged, await _jwks(client)) is not None
    assert (await client.get(f"/v1/offline/fork-proofs/{proof['id']}", headers=headers)).json() == proof

    # Committed: the credential is revoked (reason fork); nothing of the batch merged.
    r = await client.post(f"/v1/devices/{device.claims['sub']}/credentials/{device.claims['jti']}/revoke",
                          headers=headers)
    assert r.json()["revocation_reason"] == "fork" and r.json()["revoked_at"]
    receipts = (await client.get("/v1/offline/receipts", params={"block_id": device.claims["block"]["id"]},
                                 headers=headers)).json()["data"]
    assert len(receipts) == 2
    # The same batch again: the same answer.
    again = await client.post("/v1/offline/batches", json=batch, headers=headers)
    assert again.status_code == 409 and again.json()["fork_proof"] == proof
    stored = (await client.get(f"/v1/offline/batches/{problem['batch_id']}", headers=headers))
    assert stored.status_code == 200 and stored.json()["fork_proof"] == proof


async def test_two_invoices_at_one_number_in_one_batch(client, new_tenant):
    tenant, headers, outlet = await offline_outlet(client, new_tenant)
    device = await new_device(client, headers, tenant["id"], outlet["id"])
    clone = Device(device.key, device.credential)
    a, b = device.seal(), clone.seal()
    r = await client.post("/v1/offline/batches", json=device.batch([a, b]), headers=headers)
    assert r.status_code == 409 and r.json()["counter"] == a["seal"]["payload"]["counter"]
    assert fork_proofs.check(r.json()["fork_proof"]["seal"], await _jwks(client)) is None
    # Nothing merged: not even the first.
    assert (await client.get("/v1/offline/receipts", headers=headers)).json()["data"] == []


async def test_a_forged_seal_at_a_used_number_is_no_fork(client, new_tenant):
    """Only the device key's signatures prove anything: a seal that does not verify cannot revoke anyone."""
    tenant, headers, outlet = await offline_outlet(client, new_tenant)
    device = await new_device(client, headers, tenant["id"], outlet["id"])
    first = device.seal()
    await client.post("/v1/offline/batches", json=device.batch([first]), headers=headers)
    forged = {**first, "seal": {**first["seal"], "payload": {**first["seal"]["payload"], "total": "1.00"}}}
    r = await client.post("/v1/offline/batches", json=device.batch([forged]), headers=headers)
    assert r.status_code == 200 and r.json()["data"][0]["code"] == "offline_signature_invalid"
