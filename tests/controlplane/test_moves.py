"""Moving a tenant between tiers online: identical figures on both sides, a signed receipt, and the tenant
serving from exactly one side whatever happens."""
from __future__ import annotations

import asyncio
import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from sqlalchemy import text

from stalela.controlplane import moves
from stalela.fiscal.core.seal import canonical_bytes
from tests.controlplane.conftest import provisioned, seal, shared

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


async def _run_move(client, app, operator_headers, tenant_id: str, body: dict) -> dict:
    r = await client.post(f"/v1/tenants/{tenant_id}/move", json=body, headers=operator_headers)
    assert r.status_code == 202, r.text
    move = r.json()
    assert move["status"] == "running"
    status = await moves.run(app.state.db, app.state.settings, tenant_id, move["id"])
    r = await client.get(f"/v1/tenants/{tenant_id}/moves/{move['id']}", headers=operator_headers)
    assert r.status_code == 200
    assert r.json()["status"] == status, r.json()
    return r.json()


def _check_receipt(receipt: dict, jwk: dict) -> None:
    seal = receipt["seal"]
    x = int.from_bytes(base64.urlsafe_b64decode(jwk["x"] + "=="), "big")
    y = int.from_bytes(base64.urlsafe_b64decode(jwk["y"] + "=="), "big")
    key = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    raw = base64.urlsafe_b64decode(seal["signature"] + "==")
    signature = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    key.verify(signature, canonical_bytes(receipt["payload"]), ec.ECDSA(hashes.SHA256()))


async def _count(engine, sql: str, **params) -> int:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT set_config('stalela.platform', 'on', false)"))
        return (await conn.execute(text(sql), params)).scalar()


async def test_shared_to_dedicated_and_back(tier_client, tier_app, operator_headers):
    tenant, headers = await shared(tier_client, operator_headers)
    sealed = [await seal(tier_client, tenant, headers) for _ in range(5)]
    move = await _run_move(tier_client, tier_app, operator_headers, tenant["id"], {"to": "dedicated"})
    assert move["status"] == "completed", move
    receipt = move["receipt"]
    payload = receipt["payload"]
    assert payload["from"]["merkle"] == payload["to"]["merkle"]
    assert payload["from"]["merkle"]["tree_size"] == 5
    assert payload["from"]["chains"] == payload["to"]["chains"]
    assert payload["to"]["tables_at_copy"]["invoices"] == payload["from"]["tables_at_copy"]["invoices"]
    assert payload["to"]["tables_at_copy"]["invoices"]["rows"] == 5
    assert payload["rows_at_switch"]["tables"]["invoices"] == 5
    assert payload["verified"]["valid"] is True
    jwk = (await tier_client.get(f"/v1/keys/{receipt['seal']['key_id']}")).json()
    _check_receipt(receipt, jwk)

    r = await tier_client.get(f"/v1/tenants/{tenant['id']}", headers=operator_headers)
    assert r.json()["tier"] == "dedicated" and r.json()["database"] == move["target"]
    # The same key, the same invoices, and the chain goes on in the new database without a gap.
    for invoice in sealed:
        assert (await tier_client.get(f"/v1/invoices/{invoice['id']}", headers=headers)).status_code == 200
    after = await seal(tier_client, tenant, headers)
    assert after["seal"]["payload"]["counter"] == 6
    assert after["seal"]["payload"]["prev_hash"] == sealed[-1]["seal"]["hash"]
    target = tier_app.state.db.fleet.database(move["target"]).engine
    assert await _count(target, "SELECT count(*) FROM invoices WHERE tenant_id = :t", t=tenant["id"]) == 6
    control = tier_app.state.db.engine
    # The source keeps its copy, read-only for the tenant until purged: the new invoice is not there.
    assert await _count(control, "SELECT count(*) FROM invoices WHERE tenant_id = :t", t=tenant["id"]) == 5
    assert await _count(control, "SELECT count(*) FROM outbox WHERE tenant_id = :t AND status = 'pending'",
                        t=tenant["id"]) == 0

    # Back to shared: refused while the old copy is there, then purged, then moved.
    r = await tier_client.post(f"/v1/tenants/{tenant['id']}/move", json={"to": "shared"}, headers=operator_headers)
    assert r.status_code == 409 and r.json()["code"] == "purge_required"
    r = await tier_client.post(f"/v1/tenants/{tenant['id']}/moves/{move['id']}/purge", headers=operator_headers)
    assert r.status_code == 202
    await moves.purge(tier_app.state.db, tier_app.state.settings, tenant["id"], move["id"])
    assert await _count(control, "SELECT count(*) FROM invoices WHERE tenant_id = :t", t=tenant["id"]) == 0
    back = await _run_move(tier_client, tier_app, operator_headers, tenant["id"], {"to": "shared"})
    assert back["status"] == "completed", back
    assert back["receipt"]["payload"]["to"]["merkle"]["tree_size"] == 6
    assert (await seal(tier_client, tenant, headers))["seal"]["payload"]["counter"] == 7
    assert await _count(control, "SELECT count(*) FROM invoices WHERE tenant_id = :t", t=tenant["id"]) == 7


@pytest.mark.parametrize("start,to", [("shared", "dedicated"), ("dedicated", "shared")])
async def test_move_under_live_seal_load(tier_client, tier_app, operator_headers, start, to):
    """Seals keep coming during the move: none fails, none is lost, no number is skipped, and both sides
    agree on the roots at the switch. From a dedicated database too, whose commits are apart from the
    control plane's (the freeze holds the tenant's lock in both)."""
    if start == "shared":
        tenant, headers = await shared(tier_client, operator_headers)
    else:
        tenant, headers = await provisioned(tier_client, tier_app, operator_headers)
    # The load is meant to outrun the move, not the tenant's rate limit.
    r = await tier_client.patch(f"/v1/tenants/{tenant['id']}", headers=operator_headers,
                                json={"rate_limit_per_second": "100000", "rate_limit_burst": 1000000})
    assert r.status_code == 200, r.text
    for _ in range(20):
        await seal(tier_client, tenant, headers)
    stop = asyncio.Event()
    results: list[int] = []

    async def load() -> None:
        while not stop.is_set():
            r = await tier_client.post("/v1/invoices", json=_invoice(tenant), headers=headers)
            results.append(r.status_code)

    loaders = [asyncio.create_task(load()) for _ in range(4)]
    await asyncio.sleep(0.3)
    move = await _run_move(tier_client, tier_app, operator_headers, tenant["id"], {"to": to})
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.gather(*loaders)
    assert move["status"] == "completed", move
    assert results and set(results) == {201}, sorted(set(results))
    payload = move["receipt"]["payload"]
    assert payload["from"]["merkle"] == payload["to"]["merkle"]
    assert payload["from"]["caught_up_digests"] == payload["to"]["caught_up_digests"]
    target = tier_app.state.db.fleet.database(move["target"]).engine if move["target"] else tier_app.state.db.engine
    total = 20 + len(results)
    assert await _count(target, "SELECT count(*) FROM invoices WHERE tenant_id = :t", t=tenant["id"]) == total
    assert await _count(target, "SELECT max(counter) FROM invoices WHERE tenant_id = :t", t=tenant["id"]) == total
    from stalela.fiscal.reports.audit import verify_database

    report = await verify_database(tier_app.state.db, tenant["id"])
    assert report.valid and report.invoices == total, report.failures[:1]


def _invoice(tenant: dict) -> dict:
    from tests.support.invoices import sample_invoice

    return sample_invoice(tenant["outlet"])


async def test_failed_move_leaves_the_tenant_on_its_source(tier_client, tier_app, operator_headers, monkeypatch):
    tenant, headers = await shared(tier_client, operator_headers)
    await seal(tier_client, tenant, headers)
    r = await tier_client.post(f"/v1/tenants/{tenant['id']}/move", json={"to": "dedicated"}, headers=operator_headers)
    move_id = r.json()["id"]
    # The copy fails half-way (the target refuses writes): the move fails, the tenant never switched.
    original = moves._sync
    calls = {"n": 0}

    async def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("target went away")
        return await original(*args, **kwargs)

    monkeypatch.setattr(moves, "_sync", failing)
    assert await moves.run(tier_app.state.db, tier_app.state.settings, tenant["id"], move_id) == "failed"
    r = await tier_client.get(f"/v1/tenants/{tenant['id']}/moves/{move_id}", headers=operator_headers)
    assert r.json()["status"] == "failed" and "target went away" in r.json()["error"]
    r = await tier_client.get(f"/v1/tenants/{tenant['id']}", headers=operator_headers)
    assert r.json()["tier"] == "shared" and r.json()["database"] is None
    assert (await seal(tier_client, tenant, headers))["seal"]["payload"]["counter"] == 2
    # A new move picks up the partial copy and completes.
    monkeypatch.setattr(moves, "_sync", original)
    move = await _run_move(tier_client, tier_app, operator_headers, tenant["id"], {"to": "dedicated"})
    assert move["status"] == "completed", move
    assert move["receipt"]["payload"]["rows_at_switch"]["tables"]["invoices"] == 2


async def test_dedicated_between_servers_is_refused_without_another_server(tier_client, tier_app, operator_headers):
    tenant, _ = await provisioned(tier_client, tier_app, operator_headers)
    r = await tier_client.post(f"/v1/tenants/{tenant['id']}/move", json={"to": "dedicated"}, headers=operator_headers)
    assert r.status_code == 409 and r.json()["code"] == "move_noop"
    r = await tier_client.post(f"/v1/tenants/{tenant['id']}/move", json={"to": "dedicated", "target": "nowhere:1"},
                               headers=operator_headers)
    assert r.status_code == 422 and r.json()["code"] == "unknown_server"


async def test_dedicated_to_shared(tier_client, tier_app, operator_headers):
    tenant, headers = await provisioned(tier_client, tier_app, operator_headers)
    first = await seal(tier_client, tenant, headers)
    move = await _run_move(tier_client, tier_app, operator_headers, tenant["id"], {"to": "shared"})
    assert move["status"] == "completed", move
    assert (await tier_client.get(f"/v1/invoices/{first['id']}", headers=headers)).status_code == 200
    assert (await seal(tier_client, tenant, headers))["seal"]["payload"]["counter"] == 2
    # The old dedicated database is read-only for the application role until purged.
    old = tier_app.state.db.fleet.database(move["source"])
    with pytest.raises(Exception):
        async with old.transaction() as session:
            await session.execute(text("INSERT INTO outbox (tenant_id, id, topic, payload, status, attempts, "
                                       "created_at, available_at) VALUES (:t, 'x', 'x', '{}', 'pending', 0, now(), now())"),
                                  {"t": tenant["id"]})
    r = await tier_client.post(f"/v1/tenants/{tenant['id']}/moves/{move['id']}/purge", headers=operator_headers)
    assert r.status_code == 202
    await moves.purge(tier_app.state.db, tier_app.state.settings, tenant["id"], move["id"])
    r = await tier_client.get(f"/v1/tenants/{tenant['id']}/moves/{move['id']}", headers=operator_headers)
    assert r.status_code == 200
    assert json.dumps(r.json()["receipt"])  # the receipt stays


async def test_a_switch_that_fails_leaves_the_source_as_it_was(tier_client, tier_app, operator_headers, monkeypatch):
    """The source is parked (read-only, its events handed over) only after the switch committed: a failed
    switch leaves a dedicated tenant writing to its own database with its events still to deliver."""
    tenant, headers = await provisioned(tier_client, tier_app, operator_headers)
    await seal(tier_client, tenant, headers)

    async def broken(*args, **kwargs):
        raise OSError("control plane went away at the switch")

    from stalela.controlplane import move_repository

    monkeypatch.setattr(move_repository, "switch", broken)
    r = await tier_client.post(f"/v1/tenants/{tenant['id']}/move", json={"to": "shared"}, headers=operator_headers)
    assert await moves.run(tier_app.state.db, tier_app.state.settings, tenant["id"], r.json()["id"]) == "failed"
    r = await tier_client.get(f"/v1/tenants/{tenant['id']}", headers=operator_headers)
    assert r.json()["tier"] == "dedicated"
    assert (await seal(tier_client, tenant, headers))["seal"]["payload"]["counter"] == 2
    own = tier_app.state.db.fleet.database(r.json()["database"]).engine
    assert await _count(own, "SELECT count(*) FROM outbox WHERE tenant_id = :t AND status = 'moved'",
                        t=tenant["id"]) == 0
