"""The operator API (/v1/operators, /v1/ops/audit), the platform audit log's chain, and the CLI."""
from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from stalela.audit import platform as platform_audit
from stalela.audit.models import PlatformAuditEntry
from stalela.cli.main import app as cli
from stalela.db.session import Database
from tests.conftest import make_settings
from tests.controlplane.conftest import PASSWORD, unique_email
from tests.support.tamper import tamper


async def test_create_get_list_and_update_operators(client, operator_headers, new_operator):
    admin = await new_operator("platform_admin", who="admin")
    assert admin["role"] == "platform_admin" and admin["status"] == "active" and admin["password"] is True
    assert "password_hash" not in admin
    sso_only = await new_operator("support", who="sso", password=None)
    assert sso_only["password"] is False
    r = await client.get(f"/v1/operators/{admin['id']}", headers=operator_headers)
    assert r.status_code == 200 and r.json()["email"] == admin["email"]
    listed = (await client.get("/v1/operators?role=support&limit=100", headers=operator_headers)).json()
    assert sso_only["id"] in [o["id"] for o in listed["data"]]
    assert all(o["role"] == "support" for o in listed["data"])
    r = await client.patch(f"/v1/operators/{admin['id']}", json={"role": "support", "name": "Demoted"},
                           headers=operator_headers)
    assert r.status_code == 200 and (r.json()["role"], r.json()["name"]) == ("support", "Demoted")
    r = await client.patch(f"/v1/operators/{admin['id']}", json={"status": "deactivated"}, headers=operator_headers)
    assert r.json()["status"] == "deactivated"
    inactive = (await client.get("/v1/operators?status=deactivated&limit=100", headers=operator_headers)).json()
    assert admin["id"] in [o["id"] for o in inactive["data"]]


async def test_refusals_have_stable_codes(client, operator_headers, new_operator):
    op = await new_operator("support")
    again = await client.post("/v1/operators", json={"email": op["email"].upper(), "name": "Twin", "role": "support",
                                                     "password": PASSWORD}, headers=operator_headers)
    assert (again.status_code, again.json()["code"], again.json()["field"]) == (409, "operator_email_taken", "email")
    missing = await client.get("/v1/operators/opr_nobody", headers=operator_headers)
    assert (missing.status_code, missing.json()["code"]) == (404, "operator_not_found")
    patch_missing = await client.patch("/v1/operators/opr_nobody", json={"name": "x"}, headers=operator_headers)
    assert (patch_missing.status_code, patch_missing.json()["code"]) == (404, "operator_not_found")
    weak = await client.post("/v1/operators", json={"email": unique_email("weak"), "name": "W", "role": "support",
                                                    "password": "password"}, headers=operator_headers)
    assert weak.status_code == 422 and weak.json()["code"] in ("password_too_short", "password_too_common")
    role = await client.post("/v1/operators", json={"email": unique_email("r"), "name": "R", "role": "root"},
                             headers=operator_headers)
    assert role.status_code == 422 and role.json()["errors"][0]["field"].endswith("role")
    bad_status = await client.patch(f"/v1/operators/{op['id']}", json={"status": "gone"}, headers=operator_headers)
    assert bad_status.status_code == 422
    assert (await client.get("/v1/operators")).status_code == 401
    assert (await client.get("/v1/operators", headers={"Authorization": "Bearer nope"})).status_code == 401


async def test_every_operator_action_is_in_the_platform_audit_log(client, operator_headers, new_operator, new_tenant):
    op = await new_operator("support", who="audited")
    await client.patch(f"/v1/operators/{op['id']}", json={"role": "platform_admin"}, headers=operator_headers)
    tenant, _ = await new_tenant("Audited SARL", "AUD1")
    await client.post(f"/v1/tenants/{tenant['id']}/suspend", headers=operator_headers)
    await client.post(f"/v1/tenants/{tenant['id']}/activate", headers=operator_headers)
    entries = []
    before = None
    while len(entries) < 400:  # other tests write to the shared log: read back far enough
        query = f"?limit=100{f'&before={before}' if before else ''}"
        page = (await client.get(f"/v1/ops/audit{query}", headers=operator_headers)).json()
        entries += page["data"]
        if not page["has_more"]:
            break
        before = page["next_before"]
    mine = {(e["action"], e["target"]) for e in entries if e["actor"] == "operator:token"}
    for action, target in [("operator.created", op["id"]), ("operator.updated", op["id"]),
                           ("tenant.created", tenant["id"]), ("tenant.suspended", tenant["id"]),
                           ("tenant.active", tenant["id"])]:
        assert (action, target) in mine, (action, target)
    writes = [e for e in entries if e["action"] == "api.write" and e["details"]["params"].get("tenant_id") == tenant["id"]]
    assert {e["details"]["route"] for e in writes} == {"/v1/tenants/{tenant_id}/suspend",
                                                       "/v1/tenants/{tenant_id}/activate"}
    seqs = [e["seq"] for e in entries]
    assert seqs == sorted(seqs, reverse=True)
    verified = (await client.get("/v1/ops/audit/verify", headers=operator_headers)).json()
    assert verified["valid"] is True and verified["checked"] >= len(entries)
    filtered = (await client.get("/v1/ops/audit?action=operator.created", headers=operator_headers)).json()
    assert filtered["data"] and {e["action"] for e in filtered["data"]} == {"operator.created"}


async def test_a_refused_request_leaves_no_entry(client, operator_headers, new_operator):
    op = await new_operator("support")
    before = (await client.get("/v1/ops/audit/verify", headers=operator_headers)).json()["checked"]
    r = await client.post("/v1/operators", json={"email": op["email"], "name": "Twin", "role": "support"},
                          headers=operator_headers)
    assert r.status_code == 409
    after = (await client.get("/v1/ops/audit/verify", headers=operator_headers)).json()
    assert after == {"checked": before, "valid": True, "problem": None}


@pytest.fixture
def fresh_settings(fresh_database_url, tmp_path):
    return make_settings(fresh_database_url, tmp_path, argon2_time_cost=1, argon2_memory_kib=1024,
                         argon2_parallelism=1)


def test_tampering_breaks_the_chain_and_names_the_entry(fresh_settings, fresh_database_url, monkeypatch):
    async def write() -> None:
        db = Database.from_settings(fresh_settings)
        try:
            async with db.transaction() as session:
                for n in range(4):
                    await platform_audit.record(session, "operator:token", "tenant.suspended", f"ten_{n}")
            async with db.transaction(readonly=True) as session:
                assert await platform_audit.verify(session) == (4, None)
                rows = (await session.execute(select(PlatformAuditEntry.seq))).scalars().all()
                assert sorted(rows) == [1, 2, 3, 4]
        finally:
            await db.dispose()

    asyncio.run(write())
    for name, value in {"STALELA_DATABASE_URL": fresh_database_url, "STALELA_DATA_DIR": str(fresh_settings.data_dir),
                        "STALELA_MASTER_KEY": fresh_settings.master_key.get_secret_value()}.items():
        monkeypatch.setenv(name, value)
    from stalela.config import get_settings

    get_settings.cache_clear()
    runner = CliRunner()
    ok = runner.invoke(cli, ["audit", "verify-platform", "--json"])
    assert ok.exit_code == 0 and json.loads(ok.stdout)["valid"] is True
    tamper(fresh_database_url, [("UPDATE platform_audit_log SET target = %(t)s WHERE seq = 3", {"t": "ten_other"})])
    broken = runner.invoke(cli, ["audit", "verify-platform", "--json"])
    assert broken.exit_code == 1
    assert json.loads(broken.stdout)["problem"] == "entry seq 3 (tenant.suspended): its content was edited"
    get_settings.cache_clear()


def test_cli_creates_and_lists_operators(fresh_settings, fresh_database_url, monkeypatch):
    for name, value in {"STALELA_DATABASE_URL": fresh_database_url, "STALELA_DATA_DIR": str(fresh_settings.data_dir),
                        "STALELA_MASTER_KEY": fresh_settings.master_key.get_secret_value(),
                        "STALELA_ARGON2_TIME_COST": "1", "STALELA_ARGON2_MEMORY_KIB": "1024",
                        "STALELA_ARGON2_PARALLELISM": "1"}.items():
        monkeypatch.setenv(name, value)
    from stalela.config import get_settings

    get_settings.cache_clear()
    runner = CliRunner()
    made = runner.invoke(cli, ["operator", "create", "--email", "Root@Ops.Example", "--role", "platform_admin"])
    assert made.exit_code == 0, made.output
    generated = made.stdout.strip().splitlines()[-1]
    assert len(generated) >= 20
    piped = runner.invoke(cli, ["operator", "create", "--email", "help@ops.example", "--role", "support",
                                "--password-stdin", "--json"], input=PASSWORD + "\n")
    assert piped.exit_code == 0 and json.loads(piped.stdout)["password"] is True  # a password, not shown
    twice = runner.invoke(cli, ["operator", "create", "--email", "root@ops.example", "--role", "support"])
    assert twice.exit_code == 1 and "operator_email_taken" in twice.output  # a refusal (docs/cli.md)
    listed = runner.invoke(cli, ["operator", "list", "--json"])
    rows = {o["email"]: o for o in json.loads(listed.stdout)}
    assert rows["root@ops.example"]["role"] == "platform_admin" and rows["help@ops.example"]["role"] == "support"
    verified = runner.invoke(cli, ["audit", "verify-platform", "--json"])
    assert json.loads(verified.stdout) == {"entries": 2, "valid": True, "problem": None}

    async def check_password() -> bool:
        db = Database.from_settings(get_settings())
        try:
            async with db.transaction() as session:
                from stalela.controlplane import operator_service

                op = await operator_service.password_login(session, get_settings(), "ROOT@ops.example", generated, None)
                return op is not None
        finally:
            await db.dispose()

    assert asyncio.run(check_password())
    get_settings.cache_clear()
