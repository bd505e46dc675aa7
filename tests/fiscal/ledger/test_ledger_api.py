"""The tenant's Merkle log over HTTP: proofs verify against signed checkpoints, on both databases."""
from __future__ import annotations

import asyncio

import pytest

from stalela.fiscal.core import merkle
from stalela.fiscal.ledger.tasks import checkpoint_due_tenants
from tests.support.invoices import sample_invoice
from tests.support.verify import verify_seal_independently


@pytest.fixture
async def ledger_shop(client, new_tenant):
    _, headers = await new_tenant("Ledger SARL", "L000001")
    outlets = [(await client.post("/v1/outlets", json={"code": c, "name": c}, headers=headers)).json()
               for c in ("L1", "L2")]
    return headers, outlets


async def seal_many(client, headers, outlets, n):
    out = []
    for i in range(n):
        r = await client.post("/v1/invoices", json=sample_invoice(outlets[i % len(outlets)]["id"]), headers=headers)
        assert r.status_code == 201, r.text
        out.append(r.json())
    return out


async def test_inclusion_proofs_and_checkpoints(client, ledger_shop):
    headers, outlets = ledger_shop
    invoices = await seal_many(client, headers, outlets, 11)
    leaves = [merkle.leaf_hash(bytes.fromhex(i["seal"]["hash"])) for i in invoices]

    r = await client.post("/v1/ledger/checkpoints", headers=headers)
    assert r.status_code == 201, r.text
    cp = r.json()
    assert cp["tree_size"] == 11 and cp["root_hash"] == merkle.mth(leaves).hex()
    assert cp["seal"]["payload"] == {"tenant_id": invoices[0]["tenant_id"], "tree_size": 11,
                                     "root_hash": cp["root_hash"], "timestamp": cp["timestamp"]}
    jwk = (await client.get(f"/v1/keys/{cp['seal']['key_id']}")).json()
    verify_seal_independently(cp["seal"], jwk)
    assert (await client.get("/v1/ledger/checkpoints/latest", headers=headers)).json() == cp

    for position, inv in enumerate(invoices):
        proof = (await client.get(f"/v1/invoices/{inv['id']}/proof", params={"tree_size": 11}, headers=headers)).json()
        assert proof["leaf_index"] == position  # sealing order
        assert proof["root_hash"] == cp["root_hash"]
        assert proof["leaf_hash"] == leaves[position].hex()
        assert merkle.verify_inclusion(leaves[position], position, 11, [bytes.fromhex(h) for h in proof["audit_path"]],
                                       bytes.fromhex(cp["root_hash"]))
    # Proofs against an older tree size verify against that size's root.
    small = (await client.get(f"/v1/invoices/{invoices[2]['id']}/proof", params={"tree_size": 5},
                              headers=headers)).json()
    assert small["root_hash"] == merkle.mth(leaves[:5]).hex()

    for bad in (2, 12, 0):
        r = await client.get(f"/v1/invoices/{invoices[2]['id']}/proof", params={"tree_size": bad}, headers=headers)
        assert r.status_code == 422, (bad, r.text)


async def test_consistency_between_checkpoints(client, ledger_shop):
    headers, outlets = ledger_shop
    await seal_many(client, headers, outlets, 3)
    first = (await client.post("/v1/ledger/checkpoints", headers=headers)).json()
    await seal_many(client, headers, outlets, 6)
    second = (await client.post("/v1/ledger/checkpoints", headers=headers)).json()
    r = await client.get("/v1/ledger/consistency", params={"first": 3, "second": 9}, headers=headers)
    proof = r.json()
    assert proof["first_root"] == first["root_hash"] and proof["second_root"] == second["root_hash"]
    assert merkle.verify_consistency(3, 9, bytes.fromhex(first["root_hash"]), bytes.fromhex(second["root_hash"]),
                                     [bytes.fromhex(h) for h in proof["consistency_path"]])
    for params in ({"first": 0, "second": 3}, {"first": 5, "second": 4}, {"first": 1, "second": 99}):
        assert (await client.get("/v1/ledger/consistency", params=params, headers=headers)).status_code == 422
    page = (await client.get("/v1/ledger/checkpoints", params={"limit": 1}, headers=headers)).json()
    assert [c["id"] for c in page["data"]] == [second["id"]] and page["has_more"]


async def test_concurrent_seals_across_outlets_keep_one_consistent_log(client, ledger_shop):
    headers, outlets = ledger_shop
    results = await asyncio.gather(*[
        client.post("/v1/invoices", json=sample_invoice(outlets[i % 2]["id"]), headers=headers) for i in range(24)])
    assert all(r.status_code == 201 for r in results)
    cp = (await client.post("/v1/ledger/checkpoints", headers=headers)).json()
    assert cp["tree_size"] == 24
    by_leaf = {}
    for r in results:
        inv = r.json()
        proof = (await client.get(f"/v1/invoices/{inv['id']}/proof", headers=headers)).json()
        by_leaf[proof["leaf_index"]] = merkle.leaf_hash(bytes.fromhex(inv["seal"]["hash"]))
    assert sorted(by_leaf) == list(range(24))
    assert merkle.mth([by_leaf[i] for i in range(24)]).hex() == cp["root_hash"]


async def test_periodic_checkpoints_only_when_the_log_grew(app, client, ledger_shop):
    headers, outlets = ledger_shop
    settings = app.state.settings.model_copy(update={"checkpoint_interval_seconds": 0})
    await seal_many(client, headers, outlets, 2)
    assert await checkpoint_due_tenants(app.state.db, settings) >= 1
    latest = (await client.get("/v1/ledger/checkpoints/latest", headers=headers)).json()
    assert latest["tree_size"] == 2 and latest["reason"] == "periodic"
    await checkpoint_due_tenants(app.state.db, settings)
    again = (await client.get("/v1/ledger/checkpoints/latest", headers=headers)).json()
    assert again["id"] == latest["id"]  # no growth, no new checkpoint


async def test_no_checkpoint_yet_is_a_404(client, new_tenant):
    _, headers = await new_tenant()
    r = await client.get("/v1/ledger/checkpoints/latest", headers=headers)
    assert r.status_code == 404 and r.json()["code"] == "checkpoint_not_found"
