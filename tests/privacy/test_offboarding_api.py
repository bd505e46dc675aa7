"""Tenant offboarding through the API, on SQLite and PostgreSQL, with the real handler and export runner.

Each step is run by the outbox handler itself (``offboarding_tasks.offboarding_step``) on the events
the previous step enqueued; the export is built by the real audit export runner. Checks: writes are
refused with 409 tenant_deprovisioning while reads work, the export is downloadable and verifies, the
non-fiscal tables are empty for the tenant, the fiscal ones untouched, `stalela verify` passes on the
live database, the receipt verifies with the tenant's public key, and the other tenant is untouched.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import date

import bagit
import httpx
import pytest
import redis
from sqlalchemy import func, select, update

from stalela.db.session import Database
from stalela.fiscal.core.seal import verify_seal
from stalela.fiscal.invoices.models import Invoice
from stalela.fiscal.subjects.models import TenantKey
from stalela.outbox.models import OutboxEvent
from stalela.outbox.registry import Event, HandlerContext, RetryLater
from stalela.privacy import export_service, offboarding_service, offboarding_tasks
from stalela.storage.factory import store_for
from tests.privacy.conftest import extract
from stalela.privacy.offboarding_repository import PURGED
from stalela.tenancy.context import bind_platform, bind_tenant
from tests.conftest import MASTER_KEY, OPERATOR_TOKEN, make_settings
from tests.support.invoices import sample_invoice

CLI = [sys.executable, "-m", "stalela.cli.main"]
OP = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
REDIS_URL = "redis://localhost:6379/9"


def _redis_or_skip() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis on localhost: {exc}")
    return client


async def run_pending_steps(db: Database, settings, tenant_id: str, *, until: str) -> str:
    """Deliver the tenant's offboarding events one at a time, as the dispatcher would, until ``until``."""
    ctx = HandlerContext(db, settings)
    for _ in range(50):
        async with db.transaction() as session:
            await bind_tenant(session, tenant_id)
            row = await offboarding_service.get(session, tenant_id)
            if row.state == until:
                return row.state
            event = (await session.execute(
                select(OutboxEvent).where(OutboxEvent.topic == offboarding_service.TOPIC,
                                          OutboxEvent.status == "pending").order_by(OutboxEvent.created_at)
            )).scalars().first()
            assert event is not None, f"no pending step while {row.state}"
            key, payload = event.id, json.loads(event.payload)
        try:
            await offboarding_tasks.offboarding_step(ctx, Event(tenant_id, key, event.topic, payload, 1))
        except RetryLater:
            # The export runner builds the hand-over export (the privacy.export_requested handler's work).
            await export_service.build_export(db, settings, tenant_id, row.export_id)
            continue
        async with db.transaction() as session:
            await bind_tenant(session, tenant_id)
            await session.execute(update(OutboxEvent).where(OutboxEvent.id == key).values(status="done"))
    raise AssertionError(f"offboarding did not reach {until}")


async def _counts(db: Database, tenant_id: str) -> dict[str, int]:
    async with db.transaction(readonly=True) as session:
        await bind_tenant(session, tenant_id)
        counts = {}
        for model, condition in PURGED:
            stmt = select(func.count()).select_from(model).where(model.tenant_id == tenant_id)
            if condition is not None:
                stmt = stmt.where(condition)
            if model is OutboxEvent:  # the offboarding's own last steps run (and are delivered) after the purge
                stmt = stmt.where(OutboxEvent.topic != offboarding_service.TOPIC)
            counts[model.__tablename__] = (await session.execute(stmt)).scalar_one()
        return counts


async def _seal_hashes(db: Database, tenant_id: str) -> list[str]:
    async with db.transaction(readonly=True) as session:
        await bind_tenant(session, tenant_id)
        return list((await session.execute(select(Invoice.seal_hash).order_by(Invoice.seal_hash))).scalars())


@pytest.fixture
async def live(fresh_database_url, tmp_path):
    from stalela.app import create_app

    settings = make_settings(fresh_database_url, tmp_path, redis_url=REDIS_URL,
                             # buckets live burst/rate s in Redis: long enough to see the purge remove them
                             rate_limit_per_second=1.0, rate_limit_burst=600)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield application, client, settings


async def _tenant(client, name: str, tax_id: str) -> tuple[dict, dict]:
    r = await client.post("/v1/tenants", json={"name": name, "tax_id": tax_id, "jurisdiction": "CD"}, headers=OP)
    assert r.status_code == 201, r.text
    return r.json()["tenant"], {"Authorization": f"Bearer {r.json()['api_key']}"}


async def _populate(client, headers) -> dict:
    outlet = (await client.post("/v1/outlets", json={"code": "S1", "name": "Shop"}, headers=headers)).json()
    for n in range(3):
        body = sample_invoice(outlet["id"], buyer={"type": "PM", "name": f"Client {n} SA", "tax_id": f"B{n}"})
        r = await client.post("/v1/invoices", json=body, headers=headers | {"Idempotency-Key": f"k{n}"})
        assert r.status_code == 201, r.text
    assert (await client.post("/v1/api-keys", json={"name": "till"}, headers=headers)).status_code == 201
    r = await client.post("/v1/users", json={"email": "owner@shop.cd", "name": "Owner", "role": "admin",
                                            "password": "a long enough password"}, headers=headers)
    assert r.status_code == 201, r.text
    r = await client.post("/v1/webhook-endpoints", json={"url": "https://hooks.example.com/x"}, headers=headers)
    assert r.status_code == 201, r.text
    assert (await client.post("/v1/exports/audit", json={}, headers=headers)).status_code in (201, 202)
    return outlet


async def test_offboarding_returns_the_data_purges_the_rest_and_keeps_the_ledger(live, tmp_path):
    app, client, settings = live
    cache = _redis_or_skip()
    db = app.state.db
    victim, vh = await _tenant(client, "Leaving SARL", "L0000001")
    other, oh = await _tenant(client, "Staying SARL", "S0000001")
    outlet = await _populate(client, vh)
    other_outlet = await _populate(client, oh)
    before = await _seal_hashes(db, victim["id"])
    other_before = (await _counts(db, other["id"]), await _seal_hashes(db, other["id"]))
    victim_keys = [k["id"] for k in (await client.get("/v1/api-keys", headers=vh)).json()["data"]]
    other_keys = [k["id"] for k in (await client.get("/v1/api-keys", headers=oh)).json()["data"]]
    assert len(before) == 3 and [k for k in cache.keys("stalela:t*") if any(i.encode() in k for i in victim_keys)]

    r = await client.post(f"/v1/tenants/{victim['id']}/offboard", json={"mode": "return"}, headers=OP)
    assert r.status_code == 202, r.text
    started = r.json()
    assert started["state"] == "active" and started["mode"] == "return" and started["tenant_id"] == victim["id"]
    again = await client.post(f"/v1/tenants/{victim['id']}/offboard", json={"mode": "return"}, headers=OP)
    assert again.status_code == 202 and again.json()["id"] == started["id"]
    other_mode = await client.post(f"/v1/tenants/{victim['id']}/offboard", json={"mode": "delete"}, headers=OP)
    assert other_mode.status_code == 409 and other_mode.json()["code"] == "offboarding_conflict"
    assert (await client.post(f"/v1/tenants/{victim['id']}/offboard", json={"mode": "keep"},
                              headers=OP)).status_code == 422
    assert (await client.post(f"/v1/tenants/{victim['id']}/offboard", json={"mode": "return"},
                              headers=vh)).status_code == 401  # operator only
    assert (await client.get("/v1/tenants/ten_nobody/offboarding", headers=OP)).status_code == 404

    # 1. deprovisioning: every write refused by one rule, reads still work.
    await run_pending_steps(db, settings, victim["id"], until="deprovisioning")
    writes = [("POST", "/v1/invoices", sample_invoice(outlet["id"])),
              ("POST", "/v1/api-keys", {"name": "late"}),
              ("POST", "/v1/outlets", {"code": "S2", "name": "Late"}),
              ("POST", "/v1/webhook-endpoints", {"url": "https://hooks.example.com/late"}),
              ("POST", "/v1/exports/audit", {})]
    for method, path, body in writes:
        r = await client.request(method, path, json=body, headers=vh)
        assert r.status_code == 409 and r.json()["code"] == "tenant_deprovisioning", (path, r.text)
    listed = await client.get("/v1/invoices", headers=vh)
    assert listed.status_code == 200 and len(listed.json()["data"]) == 3

    # 2. exported: the hand-over export is ready, downloadable by the merchant, and verifies.
    await run_pending_steps(db, settings, victim["id"], until="exported")
    state = (await client.get(f"/v1/tenants/{victim['id']}/offboarding", headers=OP)).json()
    assert state["state"] == "exported" and state["steps"]["exported_at"] and state["download_url"]
    download = await client.get(state["download_url"])  # a signed link: no credential needed
    assert download.status_code == 200 and hashlib.sha256(download.content).hexdigest() == state["export_sha256"]
    bag = bagit.Bag(str(extract(download.content, tmp_path / "handover")))
    bag.validate()  # the portability export (BagIt): every invoice in its sealed form
    sealed = [json.loads(line) for line in (tmp_path / "handover").rglob("invoices.ndjson").__next__().read_text()
              .splitlines()]
    assert len(sealed) == 3 and all(inv["seal"]["payload"]["tenant_id"] == victim["id"] for inv in sealed)
    env = {"PATH": "/usr/bin:/bin", "STALELA_MASTER_KEY": MASTER_KEY, "STALELA_DATA_DIR": str(settings.data_dir),
           "STALELA_DATABASE_URL": settings.database_url}

    # 3 and 4: purged, deleted.
    await run_pending_steps(db, settings, victim["id"], until="deleted")
    state = (await client.get(f"/v1/tenants/{victim['id']}/offboarding", headers=OP)).json()
    assert state["state"] == "deleted" and all(state["steps"].values())
    assert not any((await _counts(db, victim["id"])).values())  # every non-fiscal table empty for the tenant
    assert state["purged"]["api_keys"] == 2 and state["purged"]["users"] == 1
    assert state["purged"]["webhook_endpoints"] == 1 and state["purged"]["idempotency_keys"] == 3
    assert state["purged"]["export_jobs"] == 1  # the merchant's own audit export; the hand-over one stays
    assert await store_for(settings).exists(export_service.storage_key(victim["id"], state["export_id"]))
    assert (await client.get("/v1/invoices", headers=vh)).status_code == 401  # the keys are gone
    tenant = (await client.get(f"/v1/tenants/{victim['id']}", headers=OP)).json()
    assert tenant["status"] == "deleted"

    # The fiscal data is kept as it was and the live ledger still verifies.
    assert await _seal_hashes(db, victim["id"]) == before
    r = subprocess.run([*CLI, "verify", "--database-url", settings.database_url, "--tenant", victim["id"]], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0 and "VALID" in r.stdout, r.stderr

    # The archive key: the tenant key that wraps the buyers' keys is destroyed after the statutory end.
    end = date(date.today().year + 10, 12, 31)
    assert state["archive_key_destroy_after"] == end.isoformat()
    async with db.transaction(readonly=True) as session:
        await bind_tenant(session, victim["id"])
        keys = list((await session.execute(select(TenantKey))).scalars())
    assert keys and all(k.destroy_after == end and k.status == "active" for k in keys)

    # The receipt: signed by the tenant's key, one of each figure, the Merkle root of the kept log.
    receipt = state["receipt"]
    jwk = (await client.get(f"/v1/keys/{receipt['key_id']}")).json()
    assert verify_seal(receipt, jwk), receipt
    payload = receipt["payload"]
    assert payload["offboarding_id"] == started["id"] and payload["export_sha256"] == state["export_sha256"]
    assert payload["merkle_tree_size"] == 3 and len(payload["merkle_root"]) == 64 and "invoices" in payload["kept"]
    assert payload["purged"] == state["purged"] and payload["archive_key_destroy_after"] == end.isoformat()

    # Rate-limit keys of the purged credentials are gone from Redis; the other tenant's are not.
    assert not [k for k in cache.keys("stalela:t*") if any(i.encode() in k for i in victim_keys)]
    assert [k for k in cache.keys("stalela:t*") if any(i.encode() in k for i in other_keys)]

    # The other tenant is untouched and still writes.
    assert (await _counts(db, other["id"]), await _seal_hashes(db, other["id"])) == other_before
    assert (await client.post("/v1/invoices", json=sample_invoice(other_outlet["id"]), headers=oh)).status_code == 201

    # A stale event of a committed step does nothing: still one receipt.
    ctx = HandlerContext(db, settings)
    for step in offboarding_service.STATES[1:]:
        await offboarding_tasks.offboarding_step(ctx, Event(victim["id"], "evt_stale", offboarding_service.TOPIC,
                                                            {"offboarding_id": started["id"], "step": step}, 1))
    assert (await client.get(f"/v1/tenants/{victim['id']}/offboarding", headers=OP)).json()["receipt"] == receipt

    # At the statutory end the sweep destroys the archive key (and so every buyer's data key).
    async with db.transaction() as session:
        await bind_platform(session)
        destroyed = await offboarding_service.destroy_due_keys(session, settings, date(end.year + 1, 1, 1))
    assert sorted(destroyed) == sorted(k.id for k in keys)
    async with db.transaction(readonly=True) as session:
        await bind_tenant(session, victim["id"])
        after = list((await session.execute(select(TenantKey))).scalars())
    assert all(k.status == "destroyed" and k.material is None for k in after)


def test_statutory_end_counts_from_the_end_of_the_year_of_the_last_invoice():
    from datetime import datetime, timezone

    assert offboarding_service.statutory_end("CD", datetime(2026, 1, 3, tzinfo=timezone.utc)) == date(2036, 12, 31)
    assert offboarding_service.statutory_end("AR", datetime(2026, 12, 31, tzinfo=timezone.utc)) == date(2036, 12, 31)
