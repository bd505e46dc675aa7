"""No endpoint leaks across tenants: walk every route of the OpenAPI document with a second tenant's
credentials and the first tenant's ids; every answer must be 401/403/404 or carry none of its data.
"""
from __future__ import annotations

import json
import re

import pytest

from tests.controlplane.conftest import tier_app, tier_client, tier_settings  # noqa: F401 (fixtures)
from tests.support.walk import ACROSS, BODIES, data_rows, database_of, make_tenant, victim_bill, victim_move, victim_objects
from stalela.db.base import utcnow
from tests.conftest import OPERATOR_TOKEN


PUBLIC = {"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc",
          # Public by design: they show what a receipt's QR code or a verifier may see, tested apart.
          "/verify/{invoice_id}", "/verify/{invoice_id}/qr.svg", "/v1/keys/{key_id}", "/.well-known/jwks.json",
          "/v1/auth/jwks.json", "/v1/auth/login", "/v1/auth/refresh", "/v1/auth/logout", "/v1/users/accept",
          "/verify/z/{z_report_id}",
          # Revocation status lists: public by design (any verifier of an offline invoice reads them).
          "/v1/status-lists/{tenant_id}", "/v1/status-lists/{tenant_id}.json"}  # shows a Z only to who holds its seal hash (h=...)


# Path parameters that name no object of a tenant but a fixed word (a category of the data map): a route with
# only these is walked like one without parameters, acting on the caller's own tenant.
NOT_OBJECTS = {"category": "operational", "period": "2026-01", "platform": "shopify"}  # nobody's objects



async def _an_operator(client) -> str:
    """An operator account (the control plane's, nobody's tenant): a tenant's key must not reach it."""
    r = await client.post("/v1/operators", json={"email": f"walk.{utcnow().timestamp()}@ops.example", "name": "Walk",
                                                 "role": "support"}, headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


# Both tiers, both directions: a dedicated tenant's key on a shared tenant's objects and the reverse, and two
# dedicated tenants (their rows are in two databases, so a leak would be a routing error, not a missing filter).
@pytest.mark.parametrize("victim_tier,attacker_tier", [("shared", "shared"), *ACROSS, ("dedicated", "dedicated")])
async def test_no_route_leaks_another_tenants_objects(tier_app, tier_client, operator_headers, victim_tier,
                                                      attacker_tier):
    app, client = tier_app, tier_client
    victim, victim_headers = await make_tenant(client, app, operator_headers, victim_tier, "Victim SARL", "V0000001")
    attacker, attacker_headers = await make_tenant(client, app, operator_headers, attacker_tier, "Attacker SARL",
                                                   "X0000001")
    ids = await victim_objects(app, client, victim_headers)
    ids["tenant_id"] = victim["id"]
    ids["bill_id"] = await victim_bill(app, victim["id"])
    ids["operator_id"] = await _an_operator(client)
    ids["move_id"] = await victim_move(app, victim["id"])
    victim_values = set(ids.values())
    ids.update(plan_id="default", version="1")  # the operator's billing plans: nobody's to leak

    spec = app.openapi()
    checked = 0
    for path, methods in spec["paths"].items():
        if path in PUBLIC:
            continue
        for method in methods:
            params = [p for p in re.findall(r"{(\w+)}", path) if p not in NOT_OBJECTS]
            missing = [p for p in params if p not in ids]
            assert not missing, f"add a victim object for {missing} in {__file__} to cover {method} {path}"
            url = path.format(**ids, **NOT_OBJECTS)
            if params:
                body = BODIES.get((method, path))
            else:
                body = {"outlet_id": ids["outlet_id"]} if method in ("post", "put", "patch") else None
            r = await client.request(method.upper(), url, headers=attacker_headers, json=body)
            checked += 1
            assert r.status_code < 500, (method, path, r.text)
            if params:
                # Never a schema error first: the route must look the object up and not find it.
                assert r.status_code in (401, 403, 404), (method, path, r.status_code, r.text)
            leaked = [v for v in victim_values if v in r.text and v not in url]
            assert not leaked, (method, path, leaked)
            if r.status_code < 300 and params:
                pytest.fail(f"{method} {path} answered {r.status_code} to another tenant")
    assert checked >= 8
    # The bodies are valid: the victim's own request passes the schema.
    for (method, path), body in BODIES.items():
        r = await client.request(method.upper(), path.format(**ids), headers=victim_headers, json=body)
        assert r.status_code != 422 or r.json().get("code") != "validation_failed", (method, path, r.text)
    if "dedicated" in (victim_tier, attacker_tier):
        # Counted in each database directly: neither tenant left a row in the other's database.
        victim_db = await database_of(client, app, operator_headers, victim["id"])
        attacker_db = await database_of(client, app, operator_headers, attacker["id"])
        assert await data_rows(victim_db, attacker["id"]) == {}
        assert await data_rows(attacker_db, victim["id"]) == {}
        assert (await data_rows(victim_db, victim["id"])).get("invoices") == 2  # one online, one merged offline


async def test_victim_objects_still_reachable_by_owner(app, client, new_tenant):
    _, headers = await new_tenant()
    ids = await victim_objects(app, client, headers)
    assert (await client.get(f"/v1/outlets/{ids['outlet_id']}", headers=headers)).status_code == 200
    assert json.loads((await client.get(f"/v1/api-keys/{ids['key_id']}", headers=headers)).text)["id"] == ids["key_id"]
    assert (await client.get(f"/v1/billing/anomalies/{ids['anomaly_id']}", headers=headers)).status_code == 200
