"""Erasure end to end over HTTP on SQLite and PostgreSQL: restrict inside retention, shred outside,
no plaintext left anywhere (tables, files, Redis), the ledger verifies the same, signed receipts,
and a database restored from a backup is erased again at start-up."""
from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx
import psycopg
import pytest
import redis
from sqlalchemy import inspect, select, text, update
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from stalela.app import create_app
from stalela.audit.models import AuditEntry
from stalela.cli.main import app as cli
from stalela.db.session import Database
from stalela.fiscal.reports.audit import verify_database
from stalela.fiscal.subjects.models import Subject
from stalela.outbox.dispatcher import Dispatcher
from stalela.tenancy.context import bind_platform, bind_tenant
from tests.conftest import OPERATOR_TOKEN, make_settings
from tests.support.invoices import sample_invoice

BUYER = {"type": "PP", "name": "Zacharie Kalombo-Mwepu", "email": "zacharie.kalombo@example.cd",
         "tax_id": "PPX7712399", "phone": "+243810001122", "address": "12 avenue Secrète, Gombe"}
OLD = {"type": "PP", "name": "Béatrice Anciennecliente", "email": "beatrice.ancienne@example.cd", "tax_id": "OLD4455667"}
NEEDLES = [BUYER["name"], BUYER["email"], BUYER["tax_id"], OLD["name"], OLD["email"], OLD["tax_id"]]
PASSWORD = "an auditor's long passphrase"
REDIS_URL = os.environ.get("STALELA_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


@pytest.fixture
def database_url(fresh_database_url):
    """A database of its own: the outbox is pumped to empty, and the scanner reads every table."""
    return fresh_database_url


def _redis_ok() -> bool:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
        return True
    except redis.RedisError:
        return False


@pytest.fixture
def settings(database_url, tmp_path):
    extra = {"redis_url": REDIS_URL} if _redis_ok() else {}
    if extra:
        redis.Redis.from_url(REDIS_URL).flushdb()
    return make_settings(database_url, tmp_path, **extra)


async def pump(db, settings) -> None:
    dispatcher = Dispatcher(db, settings)
    try:
        for _ in range(10):
            if not await dispatcher.run_once():
                break
    finally:
        await dispatcher.close()


async def _tenant(client):
    r = await client.post("/v1/tenants", json={"name": "Erase SARL", "tax_id": "ER0001", "jurisdiction": "CD"},
                          headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
    assert r.status_code == 201, r.text
    headers = {"Authorization": f"Bearer {r.json()['api_key']}"}
    outlet = (await client.post("/v1/outlets", json={"code": "ER1", "name": "Erase"}, headers=headers)).json()
    return r.json()["tenant"], headers, outlet


async def _seal(client, headers, outlet, buyer, **extra):
    r = await client.post("/v1/invoices", json=sample_invoice(outlet["id"], buyer=buyer),
                          headers={**headers, **extra})
    return r


async def scan(db: Database, settings, needles: list[str]) -> list[str]:
    """Every column of every table (as text and bytes), every file under data_dir, every Redis key and value."""
    found = []
    async with db.transaction(readonly=True) as session:
        await bind_platform(session)
        tables = await session.run_sync(lambda s: inspect(s.connection()).get_table_names())
        for table in tables:
            for row in (await session.execute(text(f'SELECT * FROM "{table}"'))).all():
                for value in row:
                    blob = value if isinstance(value, (bytes, memoryview)) else str(value).encode()
                    for needle in needles:
                        if needle.encode() in bytes(blob) or needle.lower().encode() in bytes(blob).lower():
                            found.append(f"table {table}: {needle}")
    for path in Path(settings.data_dir).rglob("*"):
        if path.is_file():
            data = path.read_bytes().lower()
            found += [f"file {path}: {n}" for n in needles if n.lower().encode() in data]
    if settings.redis_url:
        r = redis.Redis.from_url(settings.redis_url)
        for key in r.scan_iter():
            value = r.dump(key) or b""
            found += [f"redis {key!r}: {n}" for n in needles if n.lower().encode() in (key + value).lower()]
    return found


async def test_erasure_restricts_shreds_and_leaves_nothing_readable(app, client, settings, tmp_path):
    db = app.state.db
    tenant, headers, outlet = await _tenant(client)
    first = await _seal(client, headers, outlet, BUYER, **{"Idempotency-Key": f"k-{uuid.uuid4().hex}"})
    assert first.status_code == 201, first.text
    assert (await _seal(client, headers, outlet, BUYER)).status_code == 201
    old = (await _seal(client, headers, outlet, OLD)).json()
    # The old buyer's last invoice is beyond retention (a controlled clock: its last sighting, 2010).
    async with db.transaction() as session:
        await bind_tenant(session, tenant["id"])
        await session.execute(update(Subject).where(Subject.id.in_(
            select(text("buyer_subject")).select_from(text("invoices")).where(text(f"id = '{old['id']}'"))))
            .values(last_seen_at=datetime(2010, 6, 1, tzinfo=timezone.utc)))
    before = (await verify_database(db, tenant["id"])).as_json()
    assert before["valid"] and before["invoices"] == 3

    r = await client.post("/v1/privacy/erasure-requests", json={"subject": {"email": BUYER["email"]}}, headers=headers)
    assert r.status_code == 202 and r.json()["status"] == "pending", r.text
    main_id = r.json()["id"]
    r = await client.post("/v1/privacy/erasure-requests", json={"subject": {"tax_id": OLD["tax_id"]}}, headers=headers)
    old_id = r.json()["id"]
    assert (await client.post("/v1/privacy/erasure-requests", json={"subject": {}}, headers=headers)).json()["code"] \
        == "subject_required"
    await pump(db, settings)

    main = (await client.get(f"/v1/privacy/erasure-requests/{main_id}", headers=headers)).json()
    assert main["status"] == "completed" and main["completed_at"] and main["due_at"] > main["received_at"]
    year = datetime.now(timezone.utc).year
    assert main["restricted"] == [{"category": "buyer_on_sealed_invoices", "retain_until": f"{year + 10}-12-31",
                                   "legal_basis": "GDPR Art. 17(3)(b): OHADA AUDCIF (2017) art. 24"}]
    assert "buyer_identifiers" in main["erased"] and main["receipt"]["payload"]["destroyed_key_ids"] == []
    shredded = (await client.get(f"/v1/privacy/erasure-requests/{old_id}", headers=headers)).json()
    assert shredded["restricted"] == [] and "buyer_on_sealed_invoices" in shredded["erased"]
    assert len(shredded["receipt"]["payload"]["destroyed_key_ids"]) == 1
    listed = (await client.get("/v1/privacy/erasure-requests", headers=headers)).json()
    assert {x["id"] for x in listed["data"]} == {main_id, old_id}

    inv = (await client.get(f"/v1/invoices/{first.json()['id']}", headers=headers)).json()
    assert inv["buyer"] is None and inv["buyer_status"] == "restricted"
    gone = (await client.get(f"/v1/invoices/{old['id']}", headers=headers)).json()
    assert gone["buyer"] is None and gone["buyer_status"] == "erased"

    # Only an auditor reads restricted data, and every read is audited.
    assert (await client.get(f"/v1/privacy/restricted/invoices/{first.json()['id']}", headers=headers)).status_code == 403
    user = await client.post("/v1/users", json={"email": "audit@erase.cd", "name": "Auditor", "role": "auditor",
                                                "password": PASSWORD}, headers=headers)
    assert user.status_code == 201, user.text
    token = (await client.post("/v1/auth/login", json={"email": "audit@erase.cd", "password": PASSWORD})).json()
    auditor = {"Authorization": f"Bearer {token['access_token']}"}
    seen = await client.get(f"/v1/privacy/restricted/invoices/{first.json()['id']}", headers=auditor)
    assert seen.status_code == 200 and seen.json()["buyer"]["name"] == BUYER["name"], seen.text
    async with db.transaction(readonly=True) as session:
        await bind_tenant(session, tenant["id"])
        reads = (await session.execute(select(AuditEntry).where(AuditEntry.action == "privacy.restricted_read"))).scalars()
        assert [e.target for e in reads] == [first.json()["id"]]

    # No plaintext anywhere; the ledger verifies exactly as before.
    assert await scan(db, settings, NEEDLES) == []
    assert (await verify_database(db, tenant["id"])).as_json() == before

    # An erased subject stays erased.
    again = await _seal(client, headers, outlet, {"type": "PP", "name": "Z", "email": BUYER["email"]})
    assert again.status_code == 409 and again.json()["code"] == "subject_erased"
    assert (await _seal(client, headers, outlet, {"type": "PP", "name": "Z", "email": BUYER["email"],
                                                  "new_subject": True})).status_code == 201

    # The receipt verifies offline against the tenant's key; a tampered one does not.
    receipt = main["receipt"]
    assert receipt["payload"]["merkle_root_before"] == receipt["payload"]["merkle_root_after"]
    jwk = (await client.get(f"/v1/keys/{receipt['key_id']}")).json()
    (tmp_path / "key.json").write_text(json.dumps(jwk))
    (tmp_path / "receipt.json").write_text(json.dumps(receipt))
    run = CliRunner().invoke(cli, ["verify-erasure", str(tmp_path / "receipt.json"), "--jwk", str(tmp_path / "key.json")])
    assert run.exit_code == 0, run.output
    receipt["payload"]["erased"] = []
    (tmp_path / "bad.json").write_text(json.dumps(receipt))
    run = CliRunner().invoke(cli, ["verify-erasure", str(tmp_path / "bad.json"), "--jwk", str(tmp_path / "key.json")])
    assert run.exit_code == 1, run.output


async def test_operator_erases_a_tenants_user(app, client, settings):
    tenant, headers, _ = await _tenant(client)
    r = await client.post("/v1/users", json={"email": "Leaving.User@erase.cd", "name": "Léonie Departing",
                                             "role": "cashier", "password": PASSWORD}, headers=headers)
    assert r.status_code == 201, r.text
    assert (await client.post("/v1/auth/login", json={"email": "leaving.user@erase.cd", "password": "wrong one x"}))\
        .status_code == 401  # leaves a login-throttle key naming the e-mail
    operator = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    assert (await client.post(f"/v1/tenants/{tenant['id']}/erasure-requests",
                              json={"subject": {"email": "leaving.user@erase.cd"}}, headers=headers)).status_code == 401
    r = await client.post(f"/v1/tenants/{tenant['id']}/erasure-requests",
                          json={"subject": {"email": "leaving.user@erase.cd"}}, headers=operator)
    assert r.status_code == 202, r.text
    await pump(app.state.db, settings)
    done = (await client.get(f"/v1/privacy/erasure-requests/{r.json()['id']}", headers=headers)).json()
    assert done["status"] == "completed" and "user_account" in done["erased"]
    hits = await scan(app.state.db, settings, ["leaving.user@erase.cd", "Léonie Departing"])
    # Nowhere: the audit log names users by pseudonym, SQLite overwrites what it deletes (secure_delete).
    assert hits == [], hits
    login = await client.post("/v1/auth/login", json={"email": "leaving.user@erase.cd", "password": PASSWORD})
    assert login.status_code == 401


def _snapshot(url: str, admin_url: str | None, tmp_path: Path) -> str:
    if url.startswith("sqlite"):
        path = make_url(url).database
        shutil.copy(path, tmp_path / "snapshot.db")
        return str(tmp_path / "snapshot.db")
    name = make_url(url).database
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}_snap" TEMPLATE "{name}"')
    return f"{name}_snap"


def _restore(url: str, admin_url: str | None, snapshot: str) -> None:
    if url.startswith("sqlite"):
        path = make_url(url).database
        for suffix in ("-wal", "-shm"):
            Path(path + suffix).unlink(missing_ok=True)
        shutil.copy(snapshot, path)
        return
    name = make_url(url).database
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{snapshot}"')
        conn.execute(f'DROP DATABASE "{snapshot}"')


async def test_a_restored_backup_is_erased_again_at_start(settings, postgres_server, tmp_path):
    url = settings.effective_database_url.replace("+aiosqlite", "").replace("+asyncpg", "")
    url = settings.database_url
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://test")
        tenant, headers, outlet = await _tenant(client)
        inv = (await _seal(client, headers, outlet, BUYER)).json()
        await application.state.db.dispose()
        snapshot = _snapshot(url, postgres_server.admin_url, tmp_path)
        r = await client.post("/v1/privacy/erasure-requests", json={"subject": {"tax_id": BUYER["tax_id"]}},
                              headers=headers)
        await pump(application.state.db, settings)
        assert (await client.get(f"/v1/invoices/{inv['id']}", headers=headers)).json()["buyer_status"] == "restricted"
        await application.state.db.dispose()
    _restore(url, postgres_server.admin_url, snapshot)

    application = create_app(settings)
    async with application.router.lifespan_context(application):
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://test")
        shown = (await client.get(f"/v1/invoices/{inv['id']}", headers=headers)).json()
        assert shown["buyer"] is None and shown["buyer_status"] == "restricted"
        # The backup predates the request itself: its receipt survives in the journal only.
        assert (await client.get(f"/v1/privacy/erasure-requests/{r.json()['id']}", headers=headers)).status_code == 404
        again = await _seal(client, headers, outlet, {"type": "PP", "name": "Z", "tax_id": BUYER["tax_id"]})
        assert again.status_code == 409 and again.json()["code"] == "subject_erased"
        assert await scan(application.state.db, settings, [BUYER["name"], BUYER["email"], BUYER["tax_id"]]) == []
