"""API keys are listed with what they can really do: a till's key (restricted to one outlet) loses the
tenant-wide scopes whatever it was created with, and the listing says so. Each listed scope is checked
against a route that needs it: a listed one must work, an unlisted one must be refused."""
from __future__ import annotations

import pytest

from stalela.auth.permissions import DEFAULT_SCOPES, SCOPES

# One route per scope, needing that scope's characteristic permission. Anything but 403 means the
# permission check let the key through (an empty POST then fails validation: 422).
PROBES = {
    "invoices:write": ("POST", "/v1/invoices"),
    "invoices:read": ("GET", "/v1/invoices"),
    "invoices:draft": ("GET", "/v1/invoice-drafts"),
    # An invalid body: 422 once the permission check let the key through (never a 404 for the missing draft).
    "invoices:approve": ("POST", "/v1/invoice-drafts/drf_none/approvals", {"expires_in": 1}),
    "reports": ("GET", "/v1/outlets/{outlet}/x-report"),
    "webhooks": ("GET", "/v1/webhook-endpoints"),
    "connectors": ("GET", "/v1/connections"),
    "usage": ("GET", "/v1/billing/quotas"),
    "admin": ("GET", "/v1/api-keys"),
}


def test_every_scope_has_a_probe():
    assert set(PROBES) == set(SCOPES)


async def _refused(client, key: str, scope: str, outlet_id: str) -> bool:
    method, path, *body = PROBES[scope]
    r = await client.request(method, path.format(outlet=outlet_id), headers={"Authorization": f"Bearer {key}"},
                             json=(body[0] if body else {}) if method == "POST" else None)
    assert r.status_code < 500, r.text
    if r.status_code == 403:
        assert r.json()["code"] == "insufficient_permissions", r.text
        return True
    # Let through: a real answer, not a 404.
    assert r.status_code in (200, 422), (scope, r.status_code, r.text)
    return False


@pytest.mark.parametrize("requested", [None, ["admin", "invoices:write"], ["webhooks", "reports", "usage"]])
async def test_a_restricted_key_is_listed_with_the_scopes_it_can_use(client, new_tenant, requested):
    _, root = await new_tenant()
    outlet = (await client.post("/v1/outlets", json={"code": "TILL7", "name": "Till 7"}, headers=root)).json()
    body = {"name": "till 7", "outlet_id": outlet["id"]} | ({"scopes": requested} if requested else {})
    created = (await client.post("/v1/api-keys", json=body, headers=root)).json()

    listed = {k["id"]: k for k in (await client.get("/v1/api-keys", headers=root)).json()["data"]}[created["id"]]
    one = (await client.get(f"/v1/api-keys/{created['id']}", headers=root)).json()
    for shown in (created, listed, one):
        assert shown["outlet_id"] == outlet["id"] and shown["outlet_code"] == "TILL7"
        assert shown["requested_scopes"] == sorted(requested or DEFAULT_SCOPES)
        assert "admin" not in shown["scopes"] and "admin" not in shown["permissions"]
    assert listed["scopes"] == created["scopes"] == one["scopes"]

    for scope in SCOPES:
        refused = await _refused(client, created["api_key"], scope, outlet["id"])
        assert refused == (scope not in listed["scopes"]), (scope, listed["scopes"])


async def test_an_unrestricted_key_keeps_its_scopes_and_has_no_outlet(client, new_tenant):
    _, root = await new_tenant()
    outlet = (await client.post("/v1/outlets", json={"code": "HQ", "name": "HQ"}, headers=root)).json()
    created = (await client.post("/v1/api-keys", json={"name": "back office", "scopes": ["admin", "reports"]},
                                 headers=root)).json()
    assert created["scopes"] == created["requested_scopes"] == ["admin", "reports"]
    assert created["outlet_id"] is None and created["outlet_code"] is None
    assert {"admin", "exports", "reports:write"} <= set(created["permissions"])
    for scope in SCOPES:
        assert await _refused(client, created["api_key"], scope, outlet["id"]) == (scope not in created["scopes"])

    # The tenant's root key (stored without scopes: every scope but the opt-in ones) is listed with them.
    keys = (await client.get("/v1/api-keys", headers=root)).json()["data"]
    first = [k for k in keys if k["name"] == "default"][0]
    assert first["scopes"] == first["requested_scopes"] == sorted(DEFAULT_SCOPES)
    assert "invoices:approve" not in first["scopes"]  # asked for by name only (docs/assistants.md)
