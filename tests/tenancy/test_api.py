"""The tenancy registry over HTTP, on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest



async def test_tenant_lifecycle_and_outlets(client, operator_headers, new_tenant):
    tenant, headers = await new_tenant("Alpha SARL", "A1111111A")
    assert tenant["status"] == "active" and tenant["jurisdiction"] == "CD"

    r = await client.get(f"/v1/tenants/{tenant['id']}", headers=operator_headers)
    assert r.status_code == 200 and r.json()["name"] == "Alpha SARL"

    r = await client.post("/v1/outlets", json={"code": "KIN1", "name": "Gombe", "timezone": "Africa/Kinshasa"},
                          headers=headers)
    assert r.status_code == 201, r.text
    outlet = r.json()
    assert outlet["tenant_id"] == tenant["id"] and outlet["code"] == "KIN1"

    r = await client.post("/v1/outlets", json={"code": "KIN1", "name": "Again"}, headers=headers)
    assert r.status_code == 409 and r.json()["code"] == "outlet_code_taken"

    r = await client.patch(f"/v1/outlets/{outlet['id']}", json={"name": "Gombe centre"}, headers=headers)
    assert r.status_code == 200 and r.json()["name"] == "Gombe centre"

    # Suspended tenants can read but not write.
    r = await client.post(f"/v1/tenants/{tenant['id']}/suspend", headers=operator_headers)
    assert r.json()["status"] == "suspended"
    r = await client.post("/v1/outlets", json={"code": "KIN2", "name": "x"}, headers=headers)
    assert r.status_code == 403 and r.json()["code"] == "tenant_suspended"
    assert (await client.get("/v1/outlets", headers=headers)).status_code == 200
    await client.post(f"/v1/tenants/{tenant['id']}/activate", headers=operator_headers)
    r = await client.post("/v1/outlets", json={"code": "KIN2", "name": "x"}, headers=headers)
    assert r.status_code == 201


async def test_pagination(client, new_tenant):
    _, headers = await new_tenant()
    for i in range(5):
        r = await client.post("/v1/outlets", json={"code": f"P{i}", "name": f"Outlet {i}"}, headers=headers)
        assert r.status_code == 201
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"starting_after": cursor} if cursor else {})
        page = (await client.get("/v1/outlets", params=params, headers=headers)).json()
        seen += [o["code"] for o in page["data"]]
        if not page["has_more"]:
            break
        cursor = page["data"][-1]["id"]
    assert seen == ["P4", "P3", "P2", "P1", "P0"]  # newest first, no duplicates, nothing missed


async def test_api_keys_shown_once_revocable_and_restricted(client, new_tenant):
    _, headers = await new_tenant()
    outlet = (await client.post("/v1/outlets", json={"code": "A", "name": "A"}, headers=headers)).json()
    other = (await client.post("/v1/outlets", json={"code": "B", "name": "B"}, headers=headers)).json()

    r = await client.post("/v1/api-keys", json={"name": "till 1", "outlet_id": outlet["id"]}, headers=headers)
    assert r.status_code == 201
    created = r.json()
    secret = created["api_key"]
    assert secret.startswith("sk_") and created["prefix"] == secret[:11]

    listed = (await client.get("/v1/api-keys", headers=headers)).json()["data"]
    assert all("api_key" not in k and "key_hash" not in k for k in listed)
    assert created["id"] in {k["id"] for k in listed}

    till = {"Authorization": f"Bearer {secret}"}
    assert (await client.get(f"/v1/outlets/{outlet['id']}", headers=till)).status_code == 200
    assert (await client.get(f"/v1/outlets/{other['id']}", headers=till)).status_code == 404
    assert [o["id"] for o in (await client.get("/v1/outlets", headers=till)).json()["data"]] == [outlet["id"]]
    r = await client.post("/v1/api-keys", json={"name": "escalate"}, headers=till)
    assert r.status_code == 403 and r.json()["code"] == "insufficient_permissions"

    r = await client.delete(f"/v1/api-keys/{created['id']}", headers=headers)
    assert r.status_code == 200 and r.json()["revoked_at"]
    r = await client.get("/v1/outlets", headers=till)
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "body, field, code",
    [
        ({"code": "X", "name": "y", "bogus": 1}, "bogus", "unknown_field"),
        ({"name": "y"}, "code", "required"),
        ({"code": "bad code!", "name": "y"}, "code", "string_pattern_mismatch"),
        ({"code": "X", "name": "y", "timezone": "Mars/Olympus"}, "timezone", "value_error"),
        ({"code": 5, "name": "y"}, "code", "string_type"),
    ],
)
async def test_bad_outlet_input_is_a_clear_422(client, new_tenant, body, field, code):
    _, headers = await new_tenant()
    r = await client.post("/v1/outlets", json=body, headers=headers)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert problem["code"] == "validation_failed" and problem["status"] == 422
    assert {"field": field, "code": code} in [{"field": e["field"], "code": e["code"]} for e in problem["errors"]]


async def test_malformed_requests_never_5xx(client, new_tenant, operator_headers):
    _, headers = await new_tenant()
    json_headers = headers | {"Content-Type": "application/json"}
    cases = [
        ("POST", "/v1/outlets", {"content": b"{bad", "headers": json_headers}, 400, "malformed_json"),
        ("POST", "/v1/outlets", {"content": b"[]", "headers": json_headers}, 422, "validation_failed"),
        ("POST", "/v1/outlets", {"content": b"code=x", "headers": headers | {"Content-Type": "text/plain"}}, 415,
         "unsupported_media_type"),
        ("POST", "/v1/outlets", {"content": b"{" + b" " * 3_000_000 + b"}", "headers": json_headers}, 413,
         "payload_too_large"),
        ("GET", "/v1/outlets/" + "x" * 500, {"headers": headers}, 422, "validation_failed"),
        ("GET", "/v1/outlets/out_doesnotexist", {"headers": headers}, 404, "outlet_not_found"),
        ("GET", "/v1/outlets?limit=0", {"headers": headers}, 422, "validation_failed"),
        ("GET", "/v1/outlets", {"headers": {"Authorization": "Bearer sk_nope"}}, 401, "invalid_credentials"),
        ("GET", "/v1/outlets", {"headers": {"Authorization": "Basic abc"}}, 401, "invalid_credentials"),
        ("GET", "/v1/outlets", {}, 401, "missing_credentials"),
        ("POST", "/v1/tenants", {"json": {"name": "x", "tax_id": "1"}, "headers": headers}, 401, "invalid_credentials"),
        ("POST", "/v1/tenants", {"json": {"name": "x", "tax_id": "1", "jurisdiction": "ZZ"},
                                 "headers": operator_headers}, 422, "validation_failed"),
        ("GET", "/v1/tenants/ten_unknown", {"headers": operator_headers}, 404, "tenant_not_found"),
        ("DELETE", "/v1/outlets", {"headers": headers}, 405, "method_not_allowed"),
        ("GET", "/v1/nothing-here", {"headers": headers}, 404, "not_found"),
    ]
    for method, url, kwargs, status, code in cases:
        r = await client.request(method, url, **kwargs)
        assert r.status_code == status, (method, url, r.status_code, r.text[:300])
        assert r.json()["code"] == code, (method, url, r.json())
        assert r.headers["content-type"].startswith("application/problem+json")


async def test_request_id_is_echoed_or_generated(client):
    r = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await client.get("/healthz")
    assert len(r.headers["x-request-id"]) == 32


async def test_readyz_reports_database_and_migration(client):
    r = await client.get("/readyz")
    assert r.status_code == 200 and r.json()["database"] == "ok"
