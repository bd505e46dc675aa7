"""Late invoices: numbers voided while the device was away come back; each run of them is reopened by a
sealed numbers_unvoided record that references the void, and the invoices merge flagged late."""
from __future__ import annotations

import json

from sqlalchemy import select

from stalela.db.base import utcnow
from stalela.fiscal.core import offline as core
from stalela.fiscal.invoices.blocks import chain_of, keep_chain, lock_block
from stalela.fiscal.ledger.events import seal_events
from stalela.fiscal.ledger.models import LedgerEvent
from stalela.fiscal.ledger.service import LogAppender
from stalela.fiscal.reports.audit import verify_database
from stalela.fiscal.signing import registry as keys
from stalela.kit.clock import rfc3339
from stalela.tenancy.context import bind_tenant
from tests.offline.batch_support import new_device, offline_outlet


async def void_tail(app, tenant_id: str, block_id: str) -> str:  # noqa: ANN001
    """What the void at expiry does (another part's scheduler): seal numbers_voided for the unused tail."""
    async with app.state.db.transaction() as session:
        await bind_tenant(session, tenant_id)
        log = await LogAppender.open(session, tenant_id)
        block = await lock_block(session, block_id)
        chain = chain_of(block)
        first, last = core.unused_tail(chain)
        key = await keys.active_key(session, tenant_id)
        payload = core.record_payload(core.VOID, tenant_id=tenant_id, outlet_id=block.outlet_id,
                                      series_id=block.series_id, block_id=block.id, key_id=key.id, prev_hash=chain.head,
                                      at=rfc3339(utcnow()), first=first, last=last, fiscal_numbers=[], reason="expired")
        (event,) = await seal_events(session, app.state.settings, log, key, [payload])
        assert chain.void(first, last, chain.head, event.seal_hash, reason="expired") is None
        keep_chain(block, chain)
        await log.write()
        await session.flush()
        return event.seal_hash


async def _events(app, tenant_id: str) -> list[LedgerEvent]:  # noqa: ANN001
    async with app.state.db.transaction(readonly=True) as session:
        await bind_tenant(session, tenant_id)
        return list((await session.execute(select(LedgerEvent).order_by(LedgerEvent.leaf_index))).scalars())


async def test_late_invoices_reopen_their_voided_numbers(app, client, new_tenant):
    tenant, headers, outlet = await offline_outlet(client, new_tenant)
    device = await new_device(client, headers, tenant["id"], outlet["id"])
    items = [device.seal() for _ in range(7)]
    r = await client.post("/v1/offline/batches", json=device.batch(items[:2]), headers=headers)
    assert r.json()["merged"] == 2
    void_hash = await void_tail(app, tenant["id"], device.claims["block"]["id"])

    body = (await client.post("/v1/offline/batches", json=device.batch(items[2:4]), headers=headers)).json()
    assert [(d["outcome"], d["late"]) for d in body["data"]] == [("merged", True), ("merged", True)]
    invoice = (await client.get(f"/v1/invoices/{body['data'][0]['invoice_id']}", headers=headers)).json()
    assert invoice["offline"]["late"] is True

    events = await _events(app, tenant["id"])
    unvoid = json.loads(events[-1].payload)
    assert [e.kind for e in events] == ["number_block", "numbers_voided", "numbers_unvoided"]
    assert (unvoid["void"], unvoid["first"], unvoid["last"]) == (void_hash, items[2]["seal"]["payload"]["counter"],
                                                                 items[3]["seal"]["payload"]["counter"])
    assert unvoid["prev_hash"] == items[1]["seal"]["hash"]  # where the device's chain was before the void
    # The un-void's leaf comes right before the late invoices'.
    proof = (await client.get(f"/v1/invoices/{body['data'][0]['invoice_id']}/proof", headers=headers)).json()
    assert proof["leaf_index"] == events[-1].leaf_index + 1

    # A late invoice after a missing one is held; with the missing one both merge (a second un-void).
    held = (await client.post("/v1/offline/batches", json=device.batch(items[5:6]), headers=headers)).json()
    assert (held["data"][0]["outcome"], held["data"][0]["code"]) == ("held", "offline_number_gap")
    body = (await client.post("/v1/offline/batches", json=device.batch(items[4:7]), headers=headers)).json()
    assert [(d["outcome"], d["late"]) for d in body["data"]] == [("merged", True)] * 3
    assert [e.kind for e in await _events(app, tenant["id"])][-1] == "numbers_unvoided"
    # stalela verify accepts the ledger: the block's void, both un-voids and the late invoices, in place.
    report = await verify_database(app.state.db, tenant["id"])
    assert report.valid, [f.describe() for f in report.failures]
