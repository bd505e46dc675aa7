"""An offline invoice, once merged, reaches the DGI (the e-MCF simulator) through the sync agent like any
invoice: the invoice.sealed event, the pending sync state, the acknowledgement."""
from __future__ import annotations

from tests.authority.test_sync import confirmed_rns, drain, register, sim, sync_of, world  # noqa: F401 - fixtures
from tests.offline.support import issue_credential, register_device
from tests.offline.batch_support import Device


async def test_a_merged_offline_invoice_is_acknowledged_by_the_dgi(world):  # noqa: F811
    client, headers, outlet = world["client"], world["headers"], world["outlet"]
    await register(world)
    # The world fixture keeps no tenant id: a checkpoint names it.
    tenant_id = (await client.post("/v1/ledger/checkpoints", headers=headers)).json()["seal"]["payload"]["tenant_id"]
    registered, key = await register_device(client, headers, tenant_id, outlet["id"])
    device = Device(key, (await issue_credential(client, headers, registered["id"], block_size=5))["credential"])
    r = await client.post("/v1/offline/batches", json=device.batch([device.seal(), device.seal()]), headers=headers)
    assert r.json()["merged"] == 2, r.text
    await drain(world)
    for d in r.json()["data"]:
        invoice = {"id": d["invoice_id"]}
        sync = await sync_of(world, invoice)
        assert sync["status"] == "acknowledged" and sync["authority_code"], sync
        assert confirmed_rns(world).count(d["fiscal_number"]) == 1
