"""No endpoint leaks across tenants: walk every route of the OpenAPI document with a second tenant's
credentials and the first tenant's ids; every answer must be 401/403/404 or carry none of its data.
"""
from __future__ import annotations

import json
import re

import pytest

from stalela.billing import anomaly_tasks
from tests.billing.anomaly_support import DAY, spike_series, write_usage
from stalela.db.base import utcnow
from stalela.kit.clock import rfc3339
from tests.conftest import OPERATOR_TOKEN
from tests.support.invoices import sample_invoice


PUBLIC = {"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc",
          # Public by design: they show what a receipt's QR code or a verifier may see, tested apart.
          "/verify/{invoice_id}", "/verify/{invoice_id}/qr.svg", "/v1/keys/{key_id}", "/.well-known/jwks.json",
          "/v1/auth/jwks.json", "/v1/auth/login", "/v1/auth/refresh", "/v1/auth/logout", "/v1/users/accept",
          "/verify/z/{z_report_id}"}  # shows a Z only to who holds its seal hash (h=...)


# Path parameters that name no object of a tenant but a fixed word (a category of the data map): a route with
# only these is walked like one without parameters, acting on the caller's own tenant.
NOT_OBJECTS = {"category": "operational", "period": "2026-01"}  # a period is nobody's object

# Bodies the victim itself could send: so that an attacker's 404 on these routes comes from the
# ownership check, not from the schema refusing a wrong body first (checked below with the victim).
BODIES = {
    ("patch", "/v1/outlets/{outlet_id}"): {"name": "Renamed"},
    ("put", "/v1/outlets/{outlet_id}/authority-device"): {"nim": "NIM9", "base_url": "https://dgi.example.cd",
                                                          "token": "tok"},
    ("patch", "/v1/users/{user_id}"): {"name": "Renamed"},
    ("post", "/v1/outlets/{outlet_id}/z-reports"): {},
    ("patch", "/v1/webhook-endpoints/{endpoint_id}"): {"description": "renamed"},
    ("post", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): {},
    ("post", "/v1/webhook-endpoints/{endpoint_id}/recover"): {"since": "2026-01-01T00:00:00Z"},
    ("patch", "/v1/operators/{operator_id}"): {"name": "Renamed"},
}


async def _victim_objects(app, client, headers) -> dict[str, str]:
    """Create one of everything for the victim tenant; returns sample ids by path-parameter name."""
    outlet = (await client.post("/v1/outlets", json={"code": "V1", "name": "Victim"}, headers=headers)).json()
    key = (await client.post("/v1/api-keys", json={"name": "victim"}, headers=headers)).json()
    invoice = (await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)).json()
    export = (await client.post("/v1/exports/audit", json={}, headers=headers)).json()
    user = (await client.post("/v1/users", json={"email": "victim@example.cd", "name": "Victim", "role": "cashier",
                                                  "password": "a victim's long pass"}, headers=headers)).json()
    z_report = (await client.post(f"/v1/outlets/{outlet['id']}/z-reports", headers=headers)).json()
    hook = (await client.post("/v1/webhook-endpoints", json={"url": "https://hooks.example.com/v"}, headers=headers)).json()
    hook_msg = (await client.post(f"/v1/webhook-endpoints/{hook['id']}/test", headers=headers)).json()
    erasure = (await client.post("/v1/privacy/erasure-requests", json={"subject": {"email": "nobody@victim.cd"}},
                                 headers=headers)).json()
    hold = (await client.post("/v1/privacy/retention/holds", json={"reason": "victim's audit"}, headers=headers)).json()
    privacy_export = (await client.post("/v1/privacy/exports", json={"scope": "tenant"}, headers=headers)).json()
    usage = (await client.post("/v1/usage/events", json={"event_id": "victim-usage-evt-1", "resource": "api_calls",
                                                          "quantity": "1", "occurred_at": rfc3339(utcnow())},
                               headers=headers)).json()
    anomaly_id = await _victim_anomaly(app, outlet["tenant_id"])
    return {"anomaly_id": anomaly_id, "request_id": erasure["id"], "outlet_id": outlet["id"], "key_id": key["id"], "invoice_id": invoice["id"],
            "export_id": export["id"], "user_id": user["id"], "z_report_id": z_report["id"], "endpoint_id": hook["id"],
            "msg_id": hook_msg["id"], "hold_id": hold["id"], "privacy_export_id": privacy_export["id"],
            "event_id": usage["event_id"]}


async def _an_operator(client) -> str:
    """An operator account (the control plane's, nobody's tenant): a tenant's key must not reach it."""
    r = await client.post("/v1/operators", json={"email": f"walk.{utcnow().timestamp()}@ops.example", "name": "Walk",
                                                 "role": "support"}, headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def _victim_anomaly(app, tenant_id: str) -> str:
    """An anomaly stored through the detection service (no route creates one)."""
    await write_usage(app.state.db, tenant_id, "api_calls", spike_series())
    [found] = await anomaly_tasks.detect_all(app.state.db, app.state.settings, DAY, tenant_id=tenant_id)
    return found["id"]


async def _victim_bill(app, tenant_id: str) -> str:
    """A sealed-looking bill of the victim (the cycle needs usage and an issuer; the row is what matters)."""
    from stalela.billing.bill_models import Bill
    from stalela.db.base import utcnow
    from stalela.kit.ids import new_id
    from stalela.tenancy.context import bind_tenant

    async with app.state.db.transaction() as session:
        await bind_tenant(session, tenant_id)
        bill = Bill(tenant_id=tenant_id, id=new_id("bill"), period="2020-01", status="draft", currency="CDF",
                    total_cents=100, lines="[]", finalize_after=utcnow())
        session.add(bill)
    return bill.id


async def test_no_route_leaks_another_tenants_objects(app, client, new_tenant):
    victim, victim_headers = await new_tenant("Victim SARL", "V0000001")
    _, attacker_headers = await new_tenant("Attacker SARL", "X0000001")
    ids = await _victim_objects(app, client, victim_headers)
    ids["tenant_id"] = victim["id"]
    ids["bill_id"] = await _victim_bill(app, victim["id"])
    ids["operator_id"] = await _an_operator(client)
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
    # The bodies above are valid: the victim's own request passes the schema.
    for (method, path), body in BODIES.items():
        r = await client.request(method.upper(), path.format(**ids), headers=victim_headers, json=body)
        assert r.status_code != 422 or r.json().get("code") != "validation_failed", (method, path, r.text)


async def test_victim_objects_still_reachable_by_owner(app, client, new_tenant):
    _, headers = await new_tenant()
    ids = await _victim_objects(app, client, headers)
    assert (await client.get(f"/v1/outlets/{ids['outlet_id']}", headers=headers)).status_code == 200
    assert json.loads((await client.get(f"/v1/api-keys/{ids['key_id']}", headers=headers)).text)["id"] == ids["key_id"]
    assert (await client.get(f"/v1/billing/anomalies/{ids['anomaly_id']}", headers=headers)).status_code == 200
