"""Voids of offline blocks: at expiry + grace by the scheduler, and when the device returns its unused tail
(a statement signed by its credential's key). On SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from stalela.db.base import utcnow
from stalela.fiscal.core import offline as core
from stalela.fiscal.core.seal import verify_seal
from stalela.fiscal.ledger.models import Checkpoint, LedgerEvent
from stalela.offline.tasks import void_due_blocks
from stalela.outbox.models import OutboxEvent
from stalela.tenancy.context import bind_tenant
from tests.offline.void_fixtures import Device, issue_block, return_statement


@pytest.fixture
async def shop(client, new_tenant):
    tenant, headers = await new_tenant("Hors Ligne SARL", "HL00001")
    outlet = (await client.post("/v1/outlets", json={"code": "KIN1", "name": "Gombe"}, headers=headers)).json()
    return tenant, headers, outlet


async def _rows(db, tenant_id, model, *where):
    async with db.transaction(readonly=True) as session:
        await bind_tenant(session, tenant_id)
        return list((await session.execute(select(model).where(*where))).scalars())


async def test_expired_block_is_voided_once_after_the_grace(client, db, settings, shop):
    tenant, headers, outlet = shop
    now = utcnow()
    due = await issue_block(db, settings, tenant["id"], outlet["id"], size=5, expires_at=now - timedelta(hours=25))
    not_yet = await issue_block(db, settings, tenant["id"], outlet["id"], size=3, expires_at=now - timedelta(hours=23))
    checkpoints = len(await _rows(db, tenant["id"], Checkpoint))

    # The scheduler scans every tenant of the database: other tests' blocks may be due too.
    assert await void_due_blocks(db, settings) >= 1
    await void_due_blocks(db, settings)  # idempotent: the block is closed
    assert len(await _rows(db, tenant["id"], LedgerEvent, LedgerEvent.kind == core.VOID)) == 1

    block = (await client.get(f"/v1/offline/blocks/{due.block_id}", headers=headers)).json()
    assert block["status"] == "closed" and block["state"]["voided"] == 5 and block["state"]["unused"] == 0
    kinds = [e["kind"] for e in block["events"]]
    assert kinds == [core.BLOCK, core.VOID]
    void = block["events"][1]["seal"]
    p = void["payload"]
    assert (p["first"], p["last"], p["reason"], p["block_id"]) == (due.first, due.last, "expired", due.block_id)
    assert p["fiscal_numbers"] == [f"KIN1-{due.first:08d}", f"KIN1-{due.last:08d}"]
    assert p["prev_hash"] == due.anchor and "return" not in p
    jwks = (await client.get("/.well-known/jwks.json")).json()["keys"]
    assert verify_seal(void, next(k for k in jwks if k["kid"] == void["key_id"]))
    assert len(await _rows(db, tenant["id"], Checkpoint)) == checkpoints + 1
    (event,) = await _rows(db, tenant["id"], OutboxEvent, OutboxEvent.topic == "offline.numbers_voided")
    assert json.loads(event.payload)["record_hash"] == void["hash"]

    still = (await client.get(f"/v1/offline/blocks/{not_yet.block_id}", headers=headers)).json()
    assert still["status"] == "open" and still["state"]["unused"] == 3
    # An hour later it is due too.
    assert await void_due_blocks(db, settings, utcnow() + timedelta(hours=2)) >= 1
    assert (await client.get(f"/v1/offline/blocks/{not_yet.block_id}", headers=headers)).json()["status"] == "closed"


async def test_two_schedulers_at_once_void_a_block_once(db, settings, shop):
    tenant, _, outlet = shop
    issued = [await issue_block(db, settings, tenant["id"], outlet["id"], size=4,
                                expires_at=utcnow() - timedelta(days=2)) for _ in range(3)]
    made = await asyncio.gather(void_due_blocks(db, settings), void_due_blocks(db, settings))
    assert sum(made) >= 3
    voids = await _rows(db, tenant["id"], LedgerEvent, LedgerEvent.kind == core.VOID)
    assert sorted(v.block_id for v in voids) == sorted(i.block_id for i in issued)


async def test_device_returns_its_unused_tail(client, db, settings, shop):
    tenant, headers, outlet = shop
    issued = await issue_block(db, settings, tenant["id"], outlet["id"], size=6)
    url = f"/v1/offline/blocks/{issued.block_id}/return"

    wrong_start = return_statement(issued, tenant["id"], first=issued.first + 1, prev_hash=issued.anchor)
    r = await client.post(url, json=wrong_start, headers=headers)
    assert r.status_code == 409 and r.json()["code"] == "offline_void_misplaced", r.text
    wrong_head = return_statement(issued, tenant["id"], first=issued.first, prev_hash="ab" * 32)
    assert (await client.post(url, json=wrong_head, headers=headers)).json()["code"] == "offline_void_misplaced"
    stranger = return_statement(issued, tenant["id"], first=issued.first, prev_hash=issued.anchor, device=Device.new())
    r = await client.post(url, json=stranger, headers=headers)
    assert r.status_code == 422 and r.json()["code"] == "offline_return_signature"
    good = return_statement(issued, tenant["id"], first=issued.first, prev_hash=issued.anchor)
    altered = {**good, "payload": {**good["payload"], "last": issued.last - 1}}
    assert (await client.post(url, json=altered, headers=headers)).json()["code"] == "offline_return_signature"
    other_block = return_statement(issued, tenant["id"], first=issued.first, prev_hash=issued.anchor)
    other_block = issued.device.seal({**other_block["payload"], "block_id": "blk_nope"})
    r = await client.post(url, json=other_block, headers=headers)
    assert r.status_code == 422 and r.json()["field"] == "payload.block_id"

    r = await client.post(url, json=good, headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    void = body["void"]["seal"]["payload"]
    assert (void["reason"], void["return"], void["first"], void["last"]) == ("returned", good["hash"], issued.first,
                                                                             issued.last)
    assert body["block"]["status"] == "closed"
    again = await client.post(url, json=good, headers=headers)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["void"]["id"] == body["void"]["id"]
    # Nothing is left to void at expiry.
    await void_due_blocks(db, settings, utcnow() + timedelta(days=5))
    assert len(await _rows(db, tenant["id"], LedgerEvent, LedgerEvent.block_id == issued.block_id)) == 2


async def test_block_views_and_outlet_restriction(client, db, settings, shop):
    tenant, headers, outlet = shop
    other = (await client.post("/v1/outlets", json={"code": "KIN2", "name": "Limete"}, headers=headers)).json()
    mine = await issue_block(db, settings, tenant["id"], outlet["id"], size=2)
    theirs = await issue_block(db, settings, tenant["id"], other["id"], size=2,
                               expires_at=utcnow() - timedelta(days=2))
    await void_due_blocks(db, settings)
    till = (await client.post("/v1/api-keys", json={"name": "till", "outlet_id": outlet["id"]}, headers=headers)).json()
    till_h = {"Authorization": f"Bearer {till['api_key']}"}

    listed = (await client.get("/v1/offline/blocks", headers=headers)).json()
    assert [b["id"] for b in listed["data"]] == [theirs.block_id, mine.block_id] and not listed["has_more"]
    page = (await client.get("/v1/offline/blocks", params={"limit": 1}, headers=headers)).json()
    assert page["has_more"] and [b["id"] for b in page["data"]] == [theirs.block_id]
    rest = (await client.get("/v1/offline/blocks", params={"limit": 1, "starting_after": theirs.block_id},
                             headers=headers)).json()
    assert [b["id"] for b in rest["data"]] == [mine.block_id]
    closed = (await client.get("/v1/offline/blocks", params={"status": "closed"}, headers=headers)).json()
    assert [b["id"] for b in closed["data"]] == [theirs.block_id]
    by_device = (await client.get("/v1/offline/blocks", params={"device_id": closed["data"][0]["device_id"]},
                                  headers=headers)).json()
    assert [b["id"] for b in by_device["data"]] == [theirs.block_id]
    assert (await client.get("/v1/offline/blocks", params={"status": "lost"}, headers=headers)).status_code == 422

    assert [b["id"] for b in (await client.get("/v1/offline/blocks", headers=till_h)).json()["data"]] == [mine.block_id]
    r = await client.get(f"/v1/offline/blocks/{theirs.block_id}", headers=till_h)
    assert r.status_code == 404 and r.json()["code"] == "offline_block_not_found"
    statement = return_statement(theirs, tenant["id"], first=theirs.first, prev_hash=theirs.anchor)
    r = await client.post(f"/v1/offline/blocks/{theirs.block_id}/return", json=statement, headers=till_h)
    assert r.status_code == 404
    r = await client.post(f"/v1/offline/blocks/{mine.block_id}/return",
                          json=return_statement(mine, tenant["id"], first=mine.first, prev_hash=mine.anchor),
                          headers=till_h)
    assert r.status_code == 200, r.text
