"""The tenant registry's routes: tiers, Idempotency-Key (replays, reuse, a race), placement targets, filters
and cursor paging, and PATCH of the name and limits (a dedicated tenant's copy of its row follows)."""
from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import text

from stalela.controlplane import placement, provisioning
from tests.controlplane.conftest import provisioned

CD = {"tax_id": "R0000001B", "jurisdiction": "CD"}


def _key() -> dict[str, str]:
    return {"Idempotency-Key": f"reg-{uuid.uuid4()}"}


async def test_tiers_answer_with_their_state(tier_client, operator_headers):
    r = await tier_client.post("/v1/tenants", json={"name": "Commun SARL", **CD}, headers=operator_headers)
    assert r.status_code == 201, r.text
    shared = r.json()["tenant"]
    assert (shared["tier"], shared["status"], shared["server"], shared["database"]) == ("shared", "active", None, None)
    assert shared["provisioning"] == {"step": "active", "status": "completed", "attempts": 0, "error": None}
    assert shared["limits"] == {"rate_limit_per_second": None, "rate_limit_burst": None}
    assert r.json()["api_key"]

    r = await tier_client.post("/v1/tenants", json={"name": "Propre SARL", "tier": "dedicated", **CD},
                               headers=operator_headers)
    assert r.status_code == 202, r.text
    dedicated = r.json()["tenant"]
    assert (dedicated["tier"], dedicated["status"]) == ("dedicated", "provisioning")
    assert dedicated["provisioning"]["status"] == "running" and dedicated["provisioning"]["step"] == "registered"
    assert placement.database_name(dedicated["id"]) in dedicated["database"]
    assert "***" not in dedicated["database"]  # no password, not even masked: placements never hold one
    got = (await tier_client.get(f"/v1/tenants/{dedicated['id']}", headers=operator_headers)).json()
    assert got == dedicated


async def test_idempotency_key_replays_and_refuses_reuse(tier_client, operator_headers):
    key = _key()
    body = {"name": "Une Fois SARL", "tier": "dedicated", **CD}
    first = await tier_client.post("/v1/tenants", json=body, headers=operator_headers | key)
    assert first.status_code == 202 and first.json()["api_key"]
    again = await tier_client.post("/v1/tenants", json=body, headers=operator_headers | key)
    assert again.status_code == 200, again.text
    assert again.json()["tenant"]["id"] == first.json()["tenant"]["id"]
    assert again.json()["api_key"] is None and again.json()["api_key_id"] == first.json()["api_key_id"]

    other = await tier_client.post("/v1/tenants", json={**body, "name": "Autre SARL"}, headers=operator_headers | key)
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    assert other.json()["field"] == "Idempotency-Key"
    # Without a key, the same body is a second tenant.
    r1 = await tier_client.post("/v1/tenants", json={"name": "Sans Clé SARL", **CD}, headers=operator_headers)
    r2 = await tier_client.post("/v1/tenants", json={"name": "Sans Clé SARL", **CD}, headers=operator_headers)
    assert r1.json()["tenant"]["id"] != r2.json()["tenant"]["id"]


async def test_concurrent_requests_with_one_key_make_one_tenant(tier_client, tier_app, operator_headers):
    key = _key()
    name = f"Course {uuid.uuid4().hex[:8]} SARL"
    answers = await asyncio.gather(*(tier_client.post("/v1/tenants", json={"name": name, **CD},
                                                      headers=operator_headers | key) for _ in range(6)))
    codes = sorted(a.status_code for a in answers)
    assert codes.count(201) == 1, [a.text for a in answers]
    for a in answers:
        assert a.status_code in (200, 201) or (a.status_code == 409 and a.json()["code"] == "idempotency_key_in_use")
    ids = {a.json()["tenant"]["id"] for a in answers if a.status_code in (200, 201)}
    assert len(ids) == 1
    async with tier_app.state.db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT set_config('stalela.platform', 'on', false)"))
        count = (await conn.execute(text("SELECT count(*) FROM tenants WHERE name = :n"), {"n": name})).scalar()
        keys = (await conn.execute(text("SELECT count(*) FROM api_keys WHERE tenant_id = :t"),
                                   {"t": ids.pop()})).scalar()
    assert (count, keys) == (1, 1)


async def test_target_names_a_configured_server(tier_client, tier_settings, operator_headers):
    r = await tier_client.post("/v1/tenants", json={"name": "Ailleurs SARL", "tier": "dedicated",
                                                    "target": "db-nowhere:5432", **CD}, headers=operator_headers)
    assert r.status_code == 422 and r.json()["code"] == "unknown_server" and r.json()["field"] == "target"
    assert "configured:" in r.json()["detail"]
    r = await tier_client.post("/v1/tenants", json={"name": "Partagé SARL", "target": "x:1", **CD},
                               headers=operator_headers)
    assert r.status_code == 422 and r.json()["code"] == "field_not_applicable" and r.json()["field"] == "target"
    server = placement.server_of(placement.templates(tier_settings)[0].replace("{tenant}", "x"))
    r = await tier_client.post("/v1/tenants", json={"name": "Ici SARL", "tier": "dedicated", "target": server, **CD},
                               headers=operator_headers)
    assert r.status_code == 202, r.text
    assert r.json()["tenant"]["server"] == server


async def test_list_filters_and_pages(tier_client, operator_headers):
    # A jurisdiction code no other test uses isolates this test's tenants in the shared database.
    made = {}
    for tier in ("shared", "dedicated", "shared", "dedicated", "shared"):
        r = await tier_client.post("/v1/tenants", json={"name": f"Liste {tier}", "tax_id": "L1", "jurisdiction": "CD",
                                                        "tier": tier}, headers=operator_headers)
        made[r.json()["tenant"]["id"]] = r.json()["tenant"]
    seen: list[str] = []
    params: dict = {"tier": "dedicated", "status": "provisioning", "jurisdiction": "CD", "limit": 1}
    while True:
        r = await tier_client.get("/v1/tenants", params=params, headers=operator_headers)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["data"]) <= 1
        for t in page["data"]:
            assert (t["tier"], t["status"], t["jurisdiction"]) == ("dedicated", "provisioning", "CD")
        seen += [t["id"] for t in page["data"]]
        if not page["has_more"]:
            break
        params["starting_after"] = seen[-1]
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen))
    dedicated = {i for i, t in made.items() if t["tier"] == "dedicated"}
    assert dedicated <= set(seen) and not (set(made) - dedicated) & set(seen)

    r = await tier_client.get("/v1/tenants", params={"tier": "shared", "limit": 100}, headers=operator_headers)
    assert {t["tier"] for t in r.json()["data"]} == {"shared"}
    r = await tier_client.get("/v1/tenants", params={"starting_after": "ten_nonexistent"}, headers=operator_headers)
    assert r.status_code == 400 and r.json()["code"] == "invalid_cursor" and r.json()["field"] == "starting_after"
    for bad in ({"tier": "both"}, {"status": "sleeping"}, {"jurisdiction": "cd"}):
        r = await tier_client.get("/v1/tenants", params=bad, headers=operator_headers)
        assert r.status_code == 422, (bad, r.text)
    assert (await tier_client.get("/v1/tenants")).status_code == 401


async def test_patch_name_and_limits(tier_client, operator_headers):
    r = await tier_client.post("/v1/tenants", json={"name": "Avant SARL", **CD}, headers=operator_headers)
    tenant_id = r.json()["tenant"]["id"]
    url = f"/v1/tenants/{tenant_id}"
    r = await tier_client.patch(url, json={"name": "Après SARL", "rate_limit_per_second": "2.5",
                                           "rate_limit_burst": 10}, headers=operator_headers)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Après SARL"
    assert r.json()["limits"] == {"rate_limit_per_second": "2.5", "rate_limit_burst": 10}
    # Only what is given changes; null resets a limit to the platform default.
    r = await tier_client.patch(url, json={"rate_limit_burst": None}, headers=operator_headers)
    assert r.json()["name"] == "Après SARL" and r.json()["limits"]["rate_limit_burst"] is None
    assert r.json()["limits"]["rate_limit_per_second"] is not None
    assert (await tier_client.get(url, headers=operator_headers)).json() == r.json()  # "2.5" read back too
    for bad in ({"rate_limit_per_second": 0}, {"rate_limit_per_second": "1.2345"}, {"rate_limit_per_second": -1},
                {"rate_limit_burst": 0}, {"name": None}, {"name": ""}, {"tier": "dedicated"}):
        r = await tier_client.patch(url, json=bad, headers=operator_headers)
        assert r.status_code == 422, (bad, r.text)
    r = await tier_client.patch("/v1/tenants/ten_nonexistent", json={"name": "X"}, headers=operator_headers)
    assert r.status_code == 404 and r.json()["code"] == "tenant_not_found"


async def test_rename_reaches_the_dedicated_copy(tier_client, tier_app, operator_headers):
    tenant, _ = await provisioned(tier_client, tier_app, operator_headers)
    r = await tier_client.patch(f"/v1/tenants/{tenant['id']}", json={"name": "Renommé SARL"}, headers=operator_headers)
    assert r.status_code == 200, r.text
    own = tier_app.state.db.fleet.database(r.json()["database"])
    async with own.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT set_config('stalela.platform', 'on', false)"))
        name = (await conn.execute(text("SELECT name FROM tenants WHERE id = :t"), {"t": tenant["id"]})).scalar()
    assert name == "Renommé SARL"
    # A tenant still provisioning (no schema yet) is renamed in the control plane alone; seeding copies it.
    r = await tier_client.post("/v1/tenants", json={"name": "Jeune SARL", "tier": "dedicated", **CD},
                               headers=operator_headers)
    r = await tier_client.patch(f"/v1/tenants/{r.json()['tenant']['id']}", json={"name": "Jeune 2 SARL"},
                                headers=operator_headers)
    assert r.status_code == 200 and r.json()["name"] == "Jeune 2 SARL"


async def test_ops_tenants_page_shows_tier_and_provisioning(tier_client, tier_app, operator_headers):
    from tests.dashboard.test_ops import operator

    r = await tier_client.post("/v1/tenants", json={"name": "Console SARL", "tier": "dedicated", **CD},
                               headers=operator_headers)
    tenant = r.json()["tenant"]
    ops = await operator(tier_app)
    try:
        page = await ops.get("/ops/tenants")
        assert page.status_code == 200
        row = page.text.split(f"<code>{tenant['id']}</code>")[1].split("</tr>")[0]
        assert ">dedicated" in row and ">provisioning</span>" in row
        assert "provisioning: registered (running, 0 attempts)" in row
        await provisioning.run(tier_app.state.db, tier_app.state.settings, tenant["id"])
        row = (await ops.get("/ops/tenants")).text.split(f"<code>{tenant['id']}</code>")[1].split("</tr>")[0]
        assert ">active</span>" in row and "provisioning:" not in row and tenant["server"] in row
    finally:
        await ops.aclose()
