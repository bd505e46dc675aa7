"""Users, tokens, roles, scopes, rate limits and the audit log, on SQLite and PostgreSQL."""
from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import OPERATOR_TOKEN, make_settings
from tests.support.invoices import sample_invoice
from tests.support.server import start_server
from tests.support.tamper import tamper

PASSWORD = "correct horse battery staple"


@pytest.fixture
def settings(database_url, tmp_path):
    # Cheap Argon2 in tests; production parameters are the defaults (docs/security.md).
    return make_settings(database_url, tmp_path, argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1,
                         rate_limit_burst=1000)


@pytest.fixture
async def org(client, new_tenant):
    tenant, key = await new_tenant("Org SARL", "ORG1")
    outlets = [(await client.post("/v1/outlets", json={"code": c, "name": c}, headers=key)).json() for c in ("O1", "O2")]
    return tenant, key, outlets


async def make_user(client, key, email, role, outlet_ids=()):
    r = await client.post("/v1/users", json={"email": email, "name": email, "role": role, "password": PASSWORD,
                                             "outlet_ids": list(outlet_ids)}, headers=key)
    assert r.status_code == 201, r.text
    return r.json()


async def login(client, email, password=PASSWORD, tenant_id=None):
    body = {"email": email, "password": password} | ({"tenant_id": tenant_id} if tenant_id else {})
    return await client.post("/v1/auth/login", json=body)


def bearer(tokens):
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def test_login_refresh_rotation_reuse_and_logout(client, org):
    tenant, key, _ = org
    await make_user(client, key, "owner@org.cd", "owner")
    r = await login(client, "OWNER@org.cd")
    assert r.status_code == 200, r.text
    first = r.json()
    claims = jwt.decode(first["access_token"], options={"verify_signature": False})
    assert {claims["tenant_id"], claims["role"], claims["email"]} == {tenant["id"], "owner", "owner@org.cd"}
    assert claims["exp"] - claims["iat"] == 900 and claims["jti"]
    assert (await client.get("/v1/outlets", headers=bearer(first))).status_code == 200
    jwks = (await client.get("/v1/auth/jwks.json")).json()
    assert jwt.get_unverified_header(first["access_token"])["kid"] in {k["kid"] for k in jwks["keys"]}

    second = (await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})).json()
    assert second["refresh_token"] != first["refresh_token"]
    reuse = await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401 and reuse.json()["code"] == "refresh_token_reused"
    # The whole family died with the reuse, including the token issued by the legitimate rotation.
    dead = await client.post("/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert dead.status_code == 401

    third = (await login(client, "owner@org.cd")).json()
    assert (await client.post("/v1/auth/logout", json={"refresh_token": third["refresh_token"]})).status_code == 204
    assert (await client.post("/v1/auth/refresh", json={"refresh_token": third["refresh_token"]})).status_code == 401


async def test_failures_look_alike_and_are_throttled(client, org):
    _, key, _ = org
    await make_user(client, key, "cash@org.cd", "cashier")
    wrong = await login(client, "cash@org.cd", "wrong password!!")
    unknown = await login(client, "nobody@org.cd", "wrong password!!")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["code"] == unknown.json()["code"] == "invalid_credentials"
    assert wrong.json()["detail"] == unknown.json()["detail"]
    for _ in range(4):
        await login(client, "cash@org.cd", "wrong password!!")
    r = await login(client, "cash@org.cd")  # even the right password waits out the window
    assert r.status_code == 429 and r.json()["code"] == "login_throttled" and int(r.headers["retry-after"]) > 0


async def test_an_email_in_two_tenants_needs_tenant_id(client, new_tenant):
    a, key_a = await new_tenant("A", "A1")
    b, key_b = await new_tenant("B", "B1")
    for key in (key_a, key_b):
        await make_user(client, key, "both@x.cd", "accountant")
    r = await login(client, "both@x.cd")
    assert r.status_code == 409 and r.json()["code"] == "tenant_required"
    assert {t["tenant_id"] for t in r.json()["tenants"]} == {a["id"], b["id"]}
    r = await login(client, "both@x.cd", tenant_id=b["id"])
    assert r.status_code == 200 and r.json()["user"]["tenant_id"] == b["id"]


async def test_forged_tokens_are_refused(app, client, org, monkeypatch):
    tenant, key, _ = org
    await make_user(client, key, "adm@org.cd", "admin")
    good = (await login(client, "adm@org.cd")).json()["access_token"]
    # A real token, signed with the real key, issued 16 minutes ago: expired.
    from stalela.auth import tokens
    real_time = tokens.time.time
    monkeypatch.setattr(tokens.time, "time", lambda: real_time() - 16 * 60)
    expired, _ = await tokens.issue_access_token(app.state.db, app.state.settings, user_id="usr_x",
                                                 tenant_id=tenant["id"], role="admin", email="adm@org.cd")
    monkeypatch.setattr(tokens.time, "time", real_time)
    r = await client.get("/v1/outlets", headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and r.json()["code"] == "token_expired"
    claims = jwt.decode(good, options={"verify_signature": False})
    kid = jwt.get_unverified_header(good)["kid"]
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    header, payload, _ = good.split(".")
    none_token = (base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": kid}).encode()).rstrip(b"=").decode()
                  + "." + payload + ".")
    forged = {
        "alg none": none_token,
        "wrong key": jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": kid}),
        "other tenant": jwt.encode(claims | {"tenant_id": "ten_other"}, other_key, algorithm="RS256",
                                   headers={"kid": kid}),
        "hs256 with the public key": jwt.encode(claims, "s" * 64, algorithm="HS256", headers={"kid": kid}),
        "garbage": "not.a.token",
    }
    for name, token in forged.items():
        r = await client.get("/v1/outlets", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, (name, r.text)


async def test_roles_and_outlet_assignment(client, org):
    _, key, (o1, o2) = org
    await make_user(client, key, "cashier@org.cd", "cashier", [o1["id"]])
    await make_user(client, key, "acct@org.cd", "accountant")
    cashier = bearer((await login(client, "cashier@org.cd")).json())
    acct = bearer((await login(client, "acct@org.cd")).json())

    assert (await client.post("/v1/invoices", json=sample_invoice(o1["id"]), headers=cashier)).status_code == 201
    r = await client.post("/v1/invoices", json=sample_invoice(o2["id"]), headers=cashier)
    assert r.status_code == 403 and r.json()["code"] == "api_key_outlet_restricted"
    assert [o["id"] for o in (await client.get("/v1/outlets", headers=cashier)).json()["data"]] == [o1["id"]]
    r = await client.post("/v1/api-keys", json={"name": "x"}, headers=cashier)
    assert r.status_code == 403 and r.json()["code"] == "insufficient_permissions"

    r = await client.post("/v1/invoices", json=sample_invoice(o1["id"]), headers=acct)
    assert r.status_code == 403 and r.json()["required"] == "invoices:write"
    assert (await client.get("/v1/invoices", headers=acct)).status_code == 200

    # An admin may not make owners; the tenant's root key may.
    await make_user(client, key, "adm2@org.cd", "admin")
    adm = bearer((await login(client, "adm2@org.cd")).json())
    r = await client.post("/v1/users", json={"email": "o2@org.cd", "name": "o", "role": "owner", "password": PASSWORD},
                          headers=adm)
    assert r.status_code == 403
    # Deactivated users lose access at once, whatever their token says.
    users = (await client.get("/v1/users", headers=key)).json()["data"]
    cid = next(u["id"] for u in users if u["email"] == "cashier@org.cd")
    assert (await client.patch(f"/v1/users/{cid}", json={"status": "deactivated"}, headers=key)).status_code == 200
    assert (await client.get("/v1/outlets", headers=cashier)).status_code == 401


async def test_api_key_scopes(client, org):
    _, key, (o1, _) = org
    reader = (await client.post("/v1/api-keys", json={"name": "ro", "scopes": ["invoices:read"]}, headers=key)).json()
    assert reader["scopes"] == ["invoices:read"]
    ro = {"Authorization": f"Bearer {reader['api_key']}"}
    assert (await client.get("/v1/invoices", headers=ro)).status_code == 200
    r = await client.post("/v1/invoices", json=sample_invoice(o1["id"]), headers=ro)
    assert r.status_code == 403 and r.json()["code"] == "insufficient_permissions"
    bad = await client.post("/v1/api-keys", json={"name": "x", "scopes": ["everything"]}, headers=key)
    assert bad.status_code == 422


async def test_invitations_are_single_use(client, org):
    _, key, _ = org
    inv = (await client.post("/v1/users/invitations", json={"email": "new@org.cd", "name": "New", "role": "auditor"},
                             headers=key)).json()
    assert inv["token"].startswith("inv_")
    weak = await client.post("/v1/users/accept", json={"token": inv["token"], "password": "password123"})
    assert weak.status_code == 422 and weak.json()["code"] == "password_too_short"
    common = await client.post("/v1/users/accept", json={"token": inv["token"], "password": "Qwerty123456"})
    assert common.status_code == 422 and common.json()["code"] == "password_too_common"
    ok = await client.post("/v1/users/accept", json={"token": inv["token"], "password": PASSWORD})
    assert ok.status_code == 201 and ok.json()["role"] == "auditor"
    again = await client.post("/v1/users/accept", json={"token": inv["token"], "password": PASSWORD})
    assert again.status_code == 422 and again.json()["code"] == "invitation_invalid"
    auditor = bearer((await login(client, "new@org.cd")).json())
    assert (await client.get("/v1/audit-log", headers=auditor)).status_code == 200


async def test_audit_log_is_a_chain_that_detects_edits(client, org, database_url):
    tenant, key, _ = org
    await make_user(client, key, "a@org.cd", "admin")
    await login(client, "a@org.cd")
    await login(client, "a@org.cd", "wrong password!!")
    made = (await client.post("/v1/api-keys", json={"name": "k"}, headers=key)).json()
    await client.delete(f"/v1/api-keys/{made['id']}", headers=key)
    log = (await client.get("/v1/audit-log", headers=key)).json()["data"]
    actions = [e["action"] for e in reversed(log)]
    assert actions == ["tenant.created", "user.created", "auth.login", "auth.login_failed", "api_key.created",
                       "api_key.revoked"]
    assert (await client.get("/v1/audit-log/verify", headers=key)).json()["valid"] is True
    tamper(database_url, [("UPDATE audit_log SET actor = 'someone else' WHERE tenant_id = %(t)s AND seq = 2",
                           {"t": tenant["id"]})])
    verdict = (await client.get("/v1/audit-log/verify", headers=key)).json()
    assert verdict["valid"] is False and "seq 2" in verdict["problem"]


async def test_rate_limit_answers_429_with_headers(app, client, org):
    _, key, _ = org
    app.state.limiter.settings = app.state.settings.model_copy(update={"rate_limit_burst": 3,
                                                                       "rate_limit_per_second": 0.5})
    statuses = [(await client.get("/v1/outlets", headers=key)) for _ in range(5)]
    assert [r.status_code for r in statuses][:3] == [200, 200, 200]
    # Successful answers tell the caller its budget too.
    assert [r.headers["ratelimit-remaining"] for r in statuses[:3]] == ["2", "1", "0"]
    assert statuses[0].headers["ratelimit-limit"] == "3" and statuses[0].headers["ratelimit-reset"] == "0"
    limited = statuses[-1]
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert limited.headers["ratelimit-limit"] == "3" and limited.headers["ratelimit-remaining"] == "0"


def test_cli_verifies_the_audit_log(database_url, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "STALELA_MASTER_KEY": "6d" * 32, "STALELA_DATA_DIR": str(tmp_path), "STALELA_DATABASE_URL": database_url,
           "STALELA_ARGON2_MEMORY_KIB": "1024", "STALELA_ARGON2_TIME_COST": "1"}
    cli = [sys.executable, "-m", "stalela.cli.main"]
    tenant = json.loads(subprocess.run([*cli, "tenant", "create", "--name", "T", "--tax-id", "T9", "--json"],
                                       env=env, capture_output=True, text=True, check=True).stdout)["tenant"]["id"]
    made = subprocess.run([*cli, "user", "create", "--tenant", tenant, "--email", "o@t.cd", "--role", "owner",
                           "--password-stdin", "--json"], input=PASSWORD + "\n", env=env, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    check = [*cli, "verify", "--audit-log", "--database-url", database_url, "--tenant", tenant, "--json"]
    r = subprocess.run(check, env=env, capture_output=True, text=True)
    assert r.returncode == 0 and json.loads(r.stdout) == {"entries": 2, "valid": True, "problem": None}, r.stderr
    subprocess.run([*cli, "user", "create", "--tenant", tenant, "--email", "p@t.cd", "--role", "admin",
                    "--password-stdin"], input=PASSWORD + "\n", env=env, capture_output=True, text=True, check=True)
    tamper(database_url, [("DELETE FROM audit_log WHERE tenant_id = %(t)s AND seq = 1", {"t": tenant})])
    r = subprocess.run(check, env=env, capture_output=True, text=True)
    assert r.returncode == 1 and json.loads(r.stdout)["valid"] is False


def test_rate_limits_hold_across_two_processes_with_redis(tmp_path, _postgres_url):
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    env = {"STALELA_DATABASE_URL": _postgres_url, "STALELA_OPERATOR_TOKEN": OPERATOR_TOKEN,
           "STALELA_REDIS_URL": "redis://127.0.0.1:6379/15", "STALELA_RATE_LIMIT_BURST": "6",
           "STALELA_RATE_LIMIT_PER_SECOND": "0.1"}
    servers = [start_server(env, tmp_path / "a"), start_server(env, tmp_path / "b")]
    try:
        r = httpx.post(f"{servers[0].base_url}/v1/tenants", json={"name": "R", "tax_id": "R1"},
                       headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
        key = {"Authorization": f"Bearer {r.json()['api_key']}"}
        codes = [httpx.get(f"{servers[i % 2].base_url}/v1/outlets", headers=key).status_code for i in range(12)]
        assert codes.count(200) in (6, 7) and codes[-1] == 429, codes  # one bucket for both processes
    finally:
        for s in servers:
            s.stop()


async def test_an_admin_cannot_mint_a_key_that_makes_owners(client, org):
    _, key, _ = org
    await make_user(client, key, "admin@org.cd", "admin")
    admin = bearer((await login(client, "admin@org.cd")).json())
    r = await client.post("/v1/api-keys", json={"name": "root?", "scopes": ["admin"]}, headers=admin)
    assert r.status_code == 403 and r.json()["code"] == "scope_exceeds_caller" and r.json()["field"] == "scopes"
    # Without scopes the key gets what the admin may grant, which is not the admin scope (it carries ownership).
    r = await client.post("/v1/api-keys", json={"name": "ops"}, headers=admin)
    assert r.status_code == 201, r.text
    assert set(r.json()["scopes"]) == {"invoices:write", "invoices:draft", "invoices:read", "reports", "webhooks",
                                       "usage", "connectors"}
    minted = {"Authorization": f"Bearer {r.json()['api_key']}"}
    r = await client.post("/v1/users", json={"email": "me@org.cd", "name": "Me", "role": "owner",
                                             "password": PASSWORD}, headers=minted)
    assert r.status_code == 403
    # The owner's root key still makes keys with every scope.
    r = await client.post("/v1/api-keys", json={"name": "root 2"}, headers=key)
    assert r.status_code == 201 and set(r.json()["scopes"]) >= {"admin"}


async def test_webhook_and_export_changes_are_in_the_audit_log(app, client, org):
    tenant, key, _ = org
    settings = app.state.settings
    app.state.settings = settings.model_copy(update={"webhooks_allow_private": True})
    try:
        made = (await client.post("/v1/webhook-endpoints", json={"url": "https://hooks.example.com/stalela"},
                                  headers=key)).json()
        await client.patch(f"/v1/webhook-endpoints/{made['id']}", json={"enabled": False}, headers=key)
        await client.post(f"/v1/webhook-endpoints/{made['id']}/rotate-secret", headers=key)
        await client.delete(f"/v1/webhook-endpoints/{made['id']}", headers=key)
        export = (await client.post("/v1/exports/audit", json={}, headers=key)).json()
    finally:
        app.state.settings = settings
    log = (await client.get("/v1/audit-log", headers=key)).json()["data"]
    entries = {e["action"]: e for e in log}
    for action in ("webhook_endpoint.created", "webhook_endpoint.updated", "webhook_endpoint.secret_rotated",
                   "webhook_endpoint.deleted"):
        assert entries[action]["target"] == made["id"], action
    assert entries["webhook_endpoint.updated"]["details"] == {"enabled": False}
    assert entries["export.requested"]["target"] == export["id"]
    assert all(e["actor"].startswith("api_key:") for e in entries.values() if e["action"] != "tenant.created")
    assert "whsec_" not in str(log)  # secrets never reach the log
    assert (await client.get("/v1/audit-log/verify", headers=key)).json()["valid"] is True
