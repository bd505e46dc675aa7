"""Portability exports end to end through the HTTP API, on SQLite and PostgreSQL: request, build (the
outbox, pumped), download through the signed link alone, and check the archive as a third party would:
the bagit library, ``sha256sum -c``, the tag manifest's signature against the public JWK, the schemas."""
from __future__ import annotations

import base64
import csv
import hashlib
import json
import subprocess
from datetime import datetime, timedelta

import bagit

from stalela.kit import canonical
import jsonschema
import jwt
import pytest
from prometheus_client import REGISTRY

from stalela.privacy import export_service
from stalela.privacy.export_models import PrivacyExport
from stalela.storage.factory import store_for
from stalela.tenancy.context import bind_tenant
from tests.privacy.conftest import extract, members


def counted(outcome: str) -> float:
    return REGISTRY.get_sample_value("privacy_requests_total", {"type": "export", "outcome": outcome}) or 0.0


def verify_detached_jws(jws: str, content: bytes, jwk: dict) -> bytes:
    """What any JOSE library does with a detached JWS (RFC 7515 appendix F): put the payload back, verify."""
    header, empty, signature = jws.split(".")
    assert empty == ""
    token = f"{header}.{base64.urlsafe_b64encode(content).rstrip(b'=').decode()}.{signature}"
    return jwt.PyJWS().decode(token, key=jwt.PyJWK(jwk).key, algorithms=["ES256"])


async def test_tenant_export_end_to_end(world, tmp_path):
    before = {o: counted(o) for o in ("requested", "completed", "downloaded")}
    r = await world.api("POST", "/v1/privacy/exports", json={"scope": "tenant"})
    assert r.status_code == 202, r.text
    pending = r.json()
    assert pending["status"] == "pending" and pending["download_url"] is None and pending["scope"] == "tenant"

    await world.pump()
    export = (await world.api("GET", f"/v1/privacy/exports/{pending['id']}")).json()
    assert export["status"] == "ready", export
    completed = datetime.fromisoformat(export["completed_at"])
    assert datetime.fromisoformat(export["expires_at"]) - completed == timedelta(hours=72)
    assert export["download_url"].startswith(f"http://stalela.test/v1/privacy/exports/{export['id']}/download?token=")
    assert export["counts"] == {"api_keys": 2, "audit_events": export["counts"]["audit_events"], "invoices": 3,
                                "outlets": 2, "pdf": 3, "tenant": 1, "users": 1, "webhook_endpoints": 1,
                                "z_reports": 1, "usage_events": export["counts"]["usage_events"], "bills": 0}
    listed = (await world.api("GET", "/v1/privacy/exports")).json()
    assert [e["id"] for e in listed["data"]] == [export["id"]] and listed["has_more"] is False

    r = await world.download(export)  # no Authorization header: the link is the credential
    assert r.status_code == 200, r.text
    archive = r.content
    assert r.headers["content-type"] == "application/gzip" and r.headers["cache-control"] == "no-store"
    assert hashlib.sha256(archive).hexdigest() == export["sha256"] == r.headers["x-content-sha256"]
    assert len(archive) == export["size"] == int(r.headers["content-length"])

    # Deterministic packing: gzip without name or time, tar entries in path order with fixed headers.
    assert archive[:3] == b"\x1f\x8b\x08" and archive[3] & 0x08 == 0 and archive[4:8] == b"\0\0\0\0"
    infos = members(archive)
    names = [m.name for m in infos]
    assert names == sorted(names)
    day = export["created_at"][:10]
    midnight = int(datetime.fromisoformat(f"{day}T00:00:00+00:00").timestamp())
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in infos} == {(midnight, 0, 0, "", "", 0o644)}

    bag_dir = extract(archive, tmp_path / "x")
    bag = bagit.Bag(str(bag_dir))
    bag.validate()  # manifests, Payload-Oxum, completeness
    assert bag.info["Bagging-Date"] == day and bag.info["Stalela-Tenant-Id"] == world.tenant_id
    done = subprocess.run(["sha256sum", "--strict", "-c", "manifest-sha256.txt"], cwd=bag_dir, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    done = subprocess.run(["sha256sum", "--strict", "-c", "tagmanifest-sha256.txt"], cwd=bag_dir,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr

    # The tag manifest's signature, checked with the public key the API publishes (no credentials).
    jws = (bag_dir / "tagmanifest-sha256.txt.sig").read_text()
    kid = json.loads(base64.urlsafe_b64decode(jws.split(".")[0] + "==="))["kid"]
    assert kid == export["key_id"] == bag.info["Stalela-Signing-Key"]
    jwk = (await world.client.get(f"/v1/keys/{kid}")).json()
    tagmanifest = (bag_dir / "tagmanifest-sha256.txt").read_bytes()
    assert verify_detached_jws(jws, tagmanifest, jwk) == tagmanifest
    with pytest.raises(jwt.InvalidSignatureError):
        verify_detached_jws(jws, tagmanifest.replace(b"bag-info", b"bag-inf0"), jwk)

    # The content: every entity as NDJSON and CSV, each record valid against its schema.
    data = bag_dir / "data"
    for entity, count in export["counts"].items():
        if entity == "pdf":
            continue
        lines = (data / f"{entity}.ndjson").read_text().splitlines()
        assert len(lines) == count, entity
        with open(data / f"{entity}.csv", newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        assert len(rows) == count + 1 and rows[0][0] in ("id", "seq"), entity  # a header row, then the records
        validator = jsonschema.Draft202012Validator(json.loads((data / "schemas" / f"{entity}.schema.json").read_text()))
        for line in lines:
            validator.validate(json.loads(line))
    # Invoices exactly as the API answers them, each with its PDF.
    exported = {i["id"]: i for i in map(json.loads, (data / "invoices.ndjson").read_text().splitlines())}
    for invoice in world.invoices:
        assert exported[invoice["id"]] == (await world.api("GET", f"/v1/invoices/{invoice['id']}")).json()
        assert (data / "pdf" / f"{invoice['id']}.pdf").read_bytes().startswith(b"%PDF")
    assert [json.loads(x)["email"] for x in (data / "users.ndjson").read_text().splitlines()] == ["marie@example.cd"]
    # No secret anywhere: not the API keys, not the webhook secret, not a password or its hash.
    everything = b"".join(p.read_bytes() for p in bag_dir.rglob("*") if p.is_file())
    for secret in world.secrets:
        assert secret.encode() not in everything
    records = b"".join(p.read_bytes() for p in data.glob("*.*"))  # the records (the schemas say what is left out)
    for field in (b"password", b"key_hash", b"secret_encrypted", b"token_hash"):
        assert field not in records

    # Accounted for: the audit log and the metrics.
    log = (await world.api("GET", "/v1/audit-log")).json()["data"]
    actions = [(e["action"], e["target"], e["actor"]) for e in log if e["action"].startswith("privacy_export.")]
    assert [a for a, _, _ in reversed(actions)] == ["privacy_export.requested", "privacy_export.ready",
                                                   "privacy_export.downloaded"]
    assert {t for _, t, _ in actions} == {export["id"]} and actions[0][2] == "download_link"
    for outcome in ("requested", "completed", "downloaded"):
        assert counted(outcome) == before[outcome] + 1, outcome


async def test_the_same_export_built_again_is_byte_identical(world):
    export = await world.ready_export()
    first = (await world.download(export)).content
    # The builder died after writing the file but before recording it: the export is still pending,
    # its event comes back, the file is written again.
    async with world.db.transaction() as session:
        await bind_tenant(session, world.tenant_id)
        row = await session.get(PrivacyExport, (world.tenant_id, export["id"]))
        row.status, row.sha256, row.size = "pending", None, None
    assert await store_for(world.settings).delete(export_service.storage_key(world.tenant_id, export["id"]))
    assert await export_service.build_export(world.db, world.settings, world.tenant_id, export["id"]) == "ready"
    again = (await world.api("GET", f"/v1/privacy/exports/{export['id']}")).json()
    second = (await world.download(again)).content
    assert second == first and again["sha256"] == export["sha256"]
    # A build of an export that is no longer pending does nothing (the handler is idempotent).
    assert await export_service.build_export(world.db, world.settings, world.tenant_id, export["id"]) == "ready"


async def test_the_link_expires_after_72_hours_and_the_file_is_deleted(world, clock):
    export = await world.ready_export()
    key = export_service.storage_key(world.tenant_id, export["id"])
    store = store_for(world.settings)
    clock.advance(hours=71, minutes=59)
    assert (await world.download(export)).status_code == 200
    assert await export_service.expire_due(world.db, world.settings) == 0
    clock.advance(minutes=1)
    r = await world.download(export)
    assert r.status_code == 410 and r.json()["code"] == "export_link_expired", r.text
    assert (await world.api("GET", f"/v1/privacy/exports/{export['id']}")).json()["download_url"] is None
    before = counted("expired")
    assert await export_service.expire_due(world.db, world.settings) == 1
    assert await export_service.expire_due(world.db, world.settings) == 0  # once
    await world.pump()
    assert not await store.exists(key)
    assert [o.key async for o in store.list(f"{world.tenant_id}/")] == []
    assert (await world.api("GET", f"/v1/privacy/exports/{export['id']}")).json()["status"] == "expired"
    r = await world.download(export)
    assert r.status_code == 410 and r.json()["code"] == "export_link_expired"
    assert counted("expired") == before + 1
    r = await world.api("DELETE", f"/v1/privacy/exports/{export['id']}")
    assert r.status_code == 409 and r.json()["code"] == "export_not_revocable"


async def test_a_revoked_link_is_gone_and_so_is_the_file(world):
    export = await world.ready_export()
    r = await world.api("DELETE", f"/v1/privacy/exports/{export['id']}")
    assert r.status_code == 200 and r.json()["status"] == "revoked" and r.json()["download_url"] is None
    r = await world.download(export)
    assert r.status_code == 410 and r.json()["code"] == "export_revoked", r.text
    await world.pump()
    assert not await store_for(world.settings).exists(export_service.storage_key(world.tenant_id, export["id"]))
    r = await world.api("DELETE", f"/v1/privacy/exports/{export['id']}")
    assert r.status_code == 200 and r.json()["status"] == "revoked"  # idempotent
    log = (await world.api("GET", "/v1/audit-log")).json()["data"]
    assert sum(e["action"] == "privacy_export.revoked" for e in log) == 1


async def test_an_export_revoked_while_pending_is_never_stored(world):
    export = await world.request_export()
    assert (await world.api("DELETE", f"/v1/privacy/exports/{export['id']}")).json()["status"] == "revoked"
    await world.pump()
    assert (await world.api("GET", f"/v1/privacy/exports/{export['id']}")).json()["status"] == "revoked"
    assert [o async for o in store_for(world.settings).list(f"{world.tenant_id}/")] == []


async def test_links_that_are_not_genuine_are_refused(world, new_link_settings):
    export = await world.ready_export()
    path = f"/v1/privacy/exports/{export['id']}/download"
    for params in ({}, {"token": ""}, {"token": "garbage"}, {"token": export["download_url"].split("token=")[1] + "x"},
                   {"token": new_link_settings(export)}):
        r = await world.client.get(path, params=params)
        assert r.status_code == 403 and r.json()["code"] == "export_link_invalid", (params, r.text)
        assert export["id"] not in r.json()["detail"]
    # A genuine link of one export opens no other.
    other = await world.ready_export()
    token = export["download_url"].split("token=")[1]
    r = await world.client.get(f"/v1/privacy/exports/{other['id']}/download", params={"token": token})
    assert r.status_code == 403 and r.json()["code"] == "export_link_invalid"


@pytest.fixture
def new_link_settings():
    """A token made with a secret this server does not have."""
    from stalela.config import Settings
    from stalela.privacy import links

    def make(export: dict) -> str:
        return links.issue(Settings(export_link_secrets="not-the-server's", _env_file=None), "ten_x", export["id"])

    return make


async def test_another_tenant_sees_and_opens_nothing(world):
    export = await world.ready_export()
    r = await world.client.post("/v1/tenants", json={"name": "Other SARL", "tax_id": "OT0001"},
                                headers={"Authorization": "Bearer test-operator-token"})
    other = {"Authorization": f"Bearer {r.json()['api_key']}"}
    for method, url in (("GET", f"/v1/privacy/exports/{export['id']}"), ("DELETE", f"/v1/privacy/exports/{export['id']}")):
        r = await world.client.request(method, url, headers=other)
        assert r.status_code == 404 and r.json()["code"] == "export_not_found", (method, r.text)
    assert (await world.client.get("/v1/privacy/exports", headers=other)).json()["data"] == []
    r = await world.client.get(f"/v1/privacy/exports/{export['id']}/download", headers=other)
    assert r.status_code == 403  # a bearer token is no link
    assert (await world.download(export)).status_code == 200  # still the owner's


async def test_only_owners_and_admins_export(world):
    r = await world.api("POST", "/v1/api-keys", json={"name": "reports", "scopes": ["reports", "invoices:read"]})
    reports = {"Authorization": f"Bearer {r.json()['api_key']}"}
    for method, url in (("POST", "/v1/privacy/exports"), ("GET", "/v1/privacy/exports")):
        r = await world.client.request(method, url, headers=reports, json={"scope": "tenant"})
        assert r.status_code == 403 and r.json()["code"] == "insufficient_permissions", r.text


@pytest.mark.parametrize("body,code", [
    ({"scope": "subject"}, "subject_required"),
    ({"scope": "subject", "subject": {}}, "subject_required"),
    ({"scope": "tenant", "subject": {"email": "a@b.cd"}}, "subject_not_allowed"),
    ({"scope": "everything"}, "validation_failed"),
    ({"scope": "subject", "subject": {"email": "not an address"}}, "validation_failed"),
])
async def test_requests_are_checked(world, body, code):
    r = await world.api("POST", "/v1/privacy/exports", json=body)
    assert r.status_code == 422 and r.json()["code"] == code, r.text


async def test_builds_waiting_are_limited_per_tenant(world):
    for _ in range(world.settings.export_max_pending):
        await world.request_export()
    r = await world.api("POST", "/v1/privacy/exports", json={"scope": "tenant"})
    assert r.status_code == 409 and r.json()["code"] == "export_limit_reached"
    await world.pump()
    await world.request_export()  # built: room again


async def test_an_erasure_or_offboarding_revokes_every_live_export(world):
    ready = await world.ready_export()
    pending = await world.request_export()
    async with world.db.transaction() as session:
        await bind_tenant(session, world.tenant_id)
        revoked = await export_service.revoke_live_exports(session, "system", "erasure")
    assert revoked == sorted([ready["id"], pending["id"]])
    await world.pump()
    assert [o async for o in store_for(world.settings).list(f"{world.tenant_id}/")] == []
    for export in (ready, pending):
        assert (await world.api("GET", f"/v1/privacy/exports/{export['id']}")).json()["status"] == "revoked"
    assert (await world.download(ready)).json()["code"] == "export_revoked"


async def test_a_subject_export_holds_that_buyer_and_nobody_else(world, tmp_path):
    outlet = world.invoices[0]["outlet_id"]
    body = {"outlet_id": outlet, "type": "FV", "lines": [
        {"description": "Pagne wax", "item_type": "BIE", "tax_group": "B", "quantity": "1", "unit_price": "25000"}]}
    for buyer in ({"type": "PP", "name": "Esther Kanku", "email": "esther@example.cd"},
                  {"type": "PP", "name": "Esther Kanku", "email": "esther@example.cd", "phone": "+243990000001"},
                  {"type": "PP", "name": "Other Person", "email": "other@example.cd"}):
        r = await world.api("POST", "/v1/invoices", json={**body, "buyer": buyer})
        assert r.status_code == 201, r.text
    export = await world.request_export(scope="subject", subject={"email": "ESTHER@example.cd"}, pdfs=False)
    ready = await world.until(export["id"], "ready")
    assert ready["counts"]["invoices"] == 2 and ready["counts"]["pdf"] == 0, ready
    bag = extract((await world.download(ready)).content, tmp_path / "subject")
    invoices = [json.loads(line) for line in (bag / "data" / "invoices.ndjson").read_text().splitlines()]
    # Their invoices in sealed form, buyer included and checkable against the signed commitment.
    assert {i["buyer"]["name"] for i in invoices} == {"Esther Kanku"}
    for inv in invoices:
        disclosed = canonical.dumps({"salt": inv["buyer_salt"], "buyer": inv["buyer"]})
        assert hashlib.sha256(disclosed).hexdigest() == inv["seal"]["payload"]["buyer_commitment"]
    everything = b"".join(p.read_bytes() for p in bag.rglob("*") if p.is_file())
    assert b"Other Person" not in everything and b"other@example.cd" not in everything
    assert not (bag / "data" / "pdf").exists()
    # Someone the tenant never invoiced: an empty share, not an error (nothing tells who is a customer).
    nobody = await world.until((await world.request_export(scope="subject", subject={"tax_id": "NOPE"}))["id"], "ready")
    assert nobody["counts"]["invoices"] == 0


async def test_pdfs_is_a_json_boolean(world):
    """The fuzz campaign sent "pdfs": 0 and it was accepted: a boolean is true or false, nothing else."""
    r = await world.api("POST", "/v1/privacy/exports", json={"scope": "tenant", "pdfs": 0})
    assert r.status_code == 422 and r.json()["code"] == "validation_failed", r.text
