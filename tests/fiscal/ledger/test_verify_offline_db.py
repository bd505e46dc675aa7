"""``stalela verify`` of a real tenant with offline blocks, from the database and from an audit export
(which now carries the delegated credentials and the ledger events among the invoices). SQLite and
PostgreSQL."""
from __future__ import annotations

import asyncio
import json
import tarfile
from datetime import timedelta

from stalela.db.base import utcnow
from stalela.fiscal.reports.audit import verify_database, verify_export
from stalela.fiscal.reports.export import write_export
from stalela.kit.clock import rfc3339
from stalela.offline.tasks import void_due_blocks
from stalela.tenancy.context import bind_tenant
from tests.offline.batch_support import new_device, offline_outlet
from tests.offline.void_fixtures import issue_block, return_statement
from tests.support.invoices import sample_invoice
from tests.support.tamper import tamper


async def _ledger(client, db, settings, new_tenant):
    tenant, headers = await new_tenant("Archive SARL", "AR00009")
    outlet = (await client.post("/v1/outlets", json={"code": "KIN1", "name": "Gombe"}, headers=headers)).json()

    async def seal():
        r = await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)
        assert r.status_code == 201, r.text
        return r.json()

    await seal()
    expired = await issue_block(db, settings, tenant["id"], outlet["id"], size=4,
                                expires_at=utcnow() - timedelta(days=2))
    await seal()
    returned = await issue_block(db, settings, tenant["id"], outlet["id"], size=3)
    after = await seal()
    open_block = await issue_block(db, settings, tenant["id"], outlet["id"], size=5)
    assert await void_due_blocks(db, settings) >= 1  # every tenant of the database: others may be due too
    r = await client.post(f"/v1/offline/blocks/{returned.block_id}/return", headers=headers,
                          json=return_statement(returned, tenant["id"], first=returned.first, prev_hash=returned.anchor))
    assert r.status_code == 200, r.text
    await client.post("/v1/ledger/checkpoints", headers=headers)
    # The online invoice after the block chains to the block's record, whose counters it skipped.
    assert after["counter"] == returned.last + 1 and after["seal"]["payload"]["prev_hash"] == returned.anchor
    return tenant, headers, (expired, returned, open_block)


async def test_offline_blocks_verify_from_database_and_export(client, db, settings, new_tenant, tmp_path, database_url):
    tenant, _, (expired, returned, open_block) = await _ledger(client, db, settings, new_tenant)
    report = await verify_database(db, tenant["id"])
    assert report.valid, [f.describe() for f in report.failures]
    assert (report.invoices, report.events, report.blocks, report.voids, report.credentials) == (3, 5, 3, 2, 3)

    path = tmp_path / "offline.tar.gz"
    async with db.transaction(readonly=True) as session:
        await bind_tenant(session, tenant["id"])
        manifest = await write_export(session, settings, tenant["id"], path)
    assert manifest["payload"]["version"] == 2
    assert (manifest["payload"]["counts"]["events"], manifest["payload"]["counts"]["credentials"]) == (5, 3)
    with tarfile.open(path) as tar:
        lines = [json.loads(line) for line in tar.extractfile("invoices.jsonl").read().splitlines()]
        credentials = [json.loads(line) for line in tar.extractfile("credentials.jsonl").read().splitlines()]
    assert [line["leaf_index"] for line in lines] == list(range(8))
    assert [next(iter(k for k in line if k in ("invoice", "event"))) for line in lines] == [
        "invoice", "event", "invoice", "event", "invoice", "event", "event", "event"]
    assert {c["jti"] for c in credentials} == {expired.jti, returned.jti, open_block.jti}
    report = verify_export(path)
    assert report.valid, [f.describe() for f in report.failures]
    assert (report.events, report.blocks, report.voids, report.inclusion_proofs) == (5, 3, 2, 8)

    # A void's range rewritten behind the service's back is named, with its event and block.
    tamper(database_url, [("UPDATE ledger_events SET payload = replace(payload, %(old)s, %(new)s) "
                           "WHERE tenant_id = %(t)s AND kind = 'numbers_voided' AND block_id = %(b)s",
                           {"old": f'"last":{expired.last}', "new": f'"last":{expired.last - 1}', "t": tenant["id"],
                            "b": expired.block_id})])
    report = await verify_database(db, tenant["id"])
    assert report.failures[0].what == "event_seal_invalid" and report.failures[0].block_id == expired.block_id


async def test_a_date_range_export_with_offline_invoices_merged_in_it(app, client, db, settings, new_tenant, tmp_path):
    """A date range selects a leaf range (an invoice's merge time, else its sealing time; an event's
    creation): an offline invoice whose device time is before the range but merged in it is there, the lines
    stay contiguous, and its block, allocated before the range, is not "unknown"."""
    tenant, headers, outlet = await offline_outlet(client, new_tenant)

    async def seal():
        r = await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)
        assert r.status_code == 201, r.text
        return r.json()

    await seal()
    device = await new_device(client, headers, tenant["id"], outlet["id"])
    early = device.seal(issued_at=utcnow())  # sealed offline before the range starts
    await asyncio.sleep(0.02)
    start = utcnow()
    await asyncio.sleep(0.02)
    inside = await seal()
    body = (await client.post("/v1/offline/batches", json=device.batch([early]), headers=headers)).json()
    assert body["merged"] == 1, body
    after = await seal()

    path = tmp_path / "range.tar.gz"
    async with db.transaction(readonly=True) as session:
        await bind_tenant(session, tenant["id"])
        manifest = await write_export(session, settings, tenant["id"], path, date_from=start)
    with tarfile.open(path) as tar:
        lines = [json.loads(line) for line in tar.extractfile("invoices.jsonl").read().splitlines()]
    ids = [line["invoice"]["id"] for line in lines]
    merged = early["seal"]["payload"]["invoice_id"]
    assert ids == [inside["id"], merged, after["id"]]
    assert lines[1]["invoice"]["issued_at"] < rfc3339(start)  # the device's time, before the range
    leaves = [line["leaf_index"] for line in lines]
    assert leaves == list(range(leaves[0], leaves[0] + 3))
    assert manifest["payload"]["leaves"] == {"first": leaves[0], "last": leaves[-1]}
    assert manifest["payload"]["complete"] is False
    report = verify_export(path)
    assert report.valid, [f.describe() for f in report.failures]
    assert report.offline_invoices == 1
