"""Equivocation proven: an invoice at a number the device signed it gave back unused (a ``returned`` void) is
a 409 ``offline_number_returned`` with a fork proof pairing the return statement and the invoice, and the
credential is revoked (reason ``equivocation``), committed although nothing of the batch merges. Every fork
proof is an ``offline.fork_detected`` outbox event, written with it."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

from sqlalchemy import select

from stalela.fiscal.core import offline as core
from stalela.fiscal.core.seal import b64url_encode, canonical_bytes
from stalela.kit.clock import rfc3339
from stalela.offline import fork_proofs
from stalela.outbox.models import OutboxEvent
from stalela.tenancy.context import bind_tenant
from tests.offline.batch_support import Device, new_device, offline_outlet
from tests.offline.support import es256


async def _jwks(client):  # noqa: ANN001, ANN202
    return {k["kid"]: k for k in (await client.get("/.well-known/jwks.json")).json()["keys"]}.get


def _statement(device: Device) -> dict:
    c = device.claims
    payload = core.return_payload(tenant_id=c["tenant_id"], block_id=c["block"]["id"], credential=c["jti"],
                                  first=device.next, last=c["block"]["last"], prev_hash=device.head,
                                  at=rfc3339(datetime.now(timezone.utc)))
    data = canonical_bytes(payload)
    return {"payload": payload, "hash": hashlib.sha256(data).hexdigest(),
            "signature": b64url_encode(es256(device.key, data)), "key_id": device.thumbprint, "algorithm": "ES256"}


async def _fork_events(db, tenant_id: str) -> list[dict]:  # noqa: ANN001
    async with db.transaction(readonly=True) as session:
        await bind_tenant(session, tenant_id)
        rows = (await session.execute(select(OutboxEvent).where(OutboxEvent.topic == "offline.fork_detected"))).scalars()
        return [json.loads(r.payload) for r in rows]


async def test_an_invoice_at_a_returned_number_is_equivocation(client, db, new_tenant):
    tenant, headers, outlet = await offline_outlet(client, new_tenant)
    device = await new_device(client, headers, tenant["id"], outlet["id"])
    items = [device.seal(), device.seal()]
    statement = _statement(device)
    r = await client.post("/v1/offline/batches", json={**device.batch(items), "return": statement}, headers=headers)
    assert r.json()["merged"] == 2 and r.json()["return"]["status"] == 201, r.text

    # The device (or a copy of its key) seals on at the first number it gave back.
    clone = Device(device.key, device.credential)
    clone.next, clone.head = device.next, device.head
    late = clone.seal()
    batch = device.batch([late])
    r = await client.post("/v1/offline/batches", json=batch, headers=headers)
    assert r.status_code == 409, r.text
    problem = r.json()
    assert problem["code"] == "offline_number_returned" and problem["counter"] == statement["payload"]["first"]
    proof = problem["fork_proof"]
    body = proof["seal"]["payload"]
    assert body["conflict"] == "returned"
    assert (body["first"], body["second"]["hash"]) == (statement, late["seal"]["hash"])
    assert fork_proofs.check(proof["seal"], await _jwks(client)) is None
    # Not a proof: a statement that does not give back the number, or a plain fork's reading of it.
    moved = {**body, "first": {**statement, "payload": {**statement["payload"], "first": body["counter"] + 1}}}
    assert fork_proofs.check({**proof["seal"], "payload": moved}, await _jwks(client)) is not None
    assert (await client.get(f"/v1/offline/fork-proofs/{proof['id']}", headers=headers)).json() == proof

    # Committed: revoked (reason equivocation), nothing merged, the webhook event written with the proof.
    r = await client.post(f"/v1/devices/{device.claims['sub']}/credentials/{device.claims['jti']}/revoke",
                          headers=headers)
    assert r.json()["revocation_reason"] == "equivocation" and r.json()["revoked_at"]
    receipts = (await client.get("/v1/offline/receipts", params={"block_id": device.claims["block"]["id"]},
                                 headers=headers)).json()["data"]
    assert len(receipts) == 2
    (event,) = await _fork_events(db, tenant["id"])
    assert event["fork_proof_id"] == proof["id"] and event["code"] == "offline_number_returned"
    assert (event["tenant_id"], event["credential"], event["block_id"], event["counter"]) == (
        tenant["id"], device.claims["jti"], device.claims["block"]["id"], problem["counter"])
    # The same batch again: the same answer, no second proof.
    again = await client.post("/v1/offline/batches", json=batch, headers=headers)
    assert again.status_code == 409 and again.json()["fork_proof"] == proof
    assert len(await _fork_events(db, tenant["id"])) == 1


async def test_a_fork_enqueues_offline_fork_detected(client, db, new_tenant):
    tenant, headers, outlet = await offline_outlet(client, new_tenant)
    device = await new_device(client, headers, tenant["id"], outlet["id"])
    clone = Device(device.key, device.credential)
    a, b = device.seal(), clone.seal()
    r = await client.post("/v1/offline/batches", json=device.batch([a, b]), headers=headers)
    assert r.status_code == 409 and r.json()["code"] == "offline_number_reused"
    (event,) = await _fork_events(db, tenant["id"])
    assert event == {"tenant_id": tenant["id"], "credential": device.claims["jti"],
                     "block_id": device.claims["block"]["id"], "device_id": device.claims["sub"],
                     "outlet_id": outlet["id"], "counter": a["seal"]["payload"]["counter"],
                     "fork_proof_id": r.json()["fork_proof"]["id"], "code": "offline_number_reused",
                     "detected_at": event["detected_at"]}
    from stalela.webhooks import events
    assert events.thin_data(events.TOPICS["offline.fork_detected"], event) == event
