"""Every route answers a dedicated tenant as it answers a shared one.

The same requests, in the same order, by a shared and a dedicated tenant with one of each object: every
route of the OpenAPI document (public ones included, with the tenant's own ids) and every page of the
/app console must answer both with the same status. Code written before the tiers fails here when it
mixes the planes in one statement, writes a tenant's rows on a platform session, or looks for a
tenant's rows in the shared database only.
"""
from __future__ import annotations

import asyncio

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.routing import APIRoute

from stalela.fiscal.reports import jobs as export_jobs
from stalela.kit.openapi import all_routes
from stalela.outbox.dispatcher import Dispatcher
from tests.auth.test_users import PASSWORD, bearer, login
from tests.conftest import make_settings
from tests.controlplane.conftest import dedicated_template
from tests.dashboard.conftest import Browser, make_user
from tests.support.invoices import sample_invoice
from tests.support.walk import outbox_busy, BODIES as CROSS_TENANT_BODIES, TIERS, database_of, make_tenant, outbox_outcomes, \
    victim_bill, victim_objects

NOT_OBJECTS = {"category": "operational", "period": "2026-01", "plan_id": "default", "version": "1", "platform": "shopify"}
# What the tenant itself would send to its own objects (the cross-tenant walk's bodies, and a few more).
BODIES: dict[tuple[str, str], Any] = {
    **CROSS_TENANT_BODIES,
    ("post", "/v1/ledger/checkpoints"): {},
    ("post", "/v1/users/invitations"): {"email": "invited@example.cd", "name": "Invited", "role": "cashier"},
    ("post", "/v1/privacy/erasure-requests"): {"subject": {"email": "other@example.cd"}},
    ("post", "/v1/privacy/retention/holds"): {"reason": "audit"},
    ("post", "/v1/privacy/exports"): {"scope": "tenant"},
    ("post", "/v1/exports/audit"): {},
}
QUERIES = {"/v1/a-reports": "from=2026-01-01&to=2026-01-31", "/v1/ledger/consistency": "first=1&second={checkpoint_size}",
           # The public pages are opened as printed: the query of the QR code's URL (the Z's seal hash, the tenant).
           "/verify/{invoice_id}": "{invoice_query}", "/verify/{invoice_id}/qr.svg": "{invoice_query}",
           "/verify/z/{z_report_id}": "{z_query}"}
# Deletions last: the other routes still find the objects they name.
ORDER = {"get": 0, "head": 0, "post": 1, "put": 1, "patch": 1, "delete": 2}


@pytest.fixture
def tier_settings(database_url, tmp_path):
    # Some 300 requests per tenant: a burst the rate limit lets through; cheap Argon2 for the sign-ins.
    return make_settings(database_url, tmp_path, dedicated_database_url_template=dedicated_template(database_url, tmp_path),
                         rate_limit_burst=10_000, argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1)


def _routes(spec: dict) -> list[tuple[str, str]]:
    found = [(m, p) for p, methods in spec["paths"].items() for m in methods]
    return sorted(found, key=lambda mp: (ORDER.get(mp[0], 1), mp[1], mp[0]))


async def _objects(app, client, tenant: dict, headers: dict) -> dict[str, str]:
    """One of each object (the cross-tenant walk's), and a batch, a credit note and a checkpoint."""
    ids = await victim_objects(app, client, headers)
    ids["tenant_id"] = tenant["id"]
    ids["bill_id"] = await victim_bill(app, tenant["id"])
    invoice = (await client.get(f"/v1/invoices/{ids['invoice_id']}", headers=headers)).json()
    z = (await client.get(f"/v1/z-reports/{ids['z_report_id']}", headers=headers)).json()
    ids["invoice_query"], ids["z_query"] = urlsplit(invoice["qr"]).query, urlsplit(z["qr"]).query
    batch = await client.post("/v1/invoices/batch", headers=headers, json={"items": [
        {"invoice": sample_invoice(ids["outlet_id"])},
        {"invoice": sample_invoice(ids["outlet_id"], type="FA", nature="COR", original=invoice["fiscal_number"])}]})
    assert batch.status_code == 200 and [i["status"] for i in batch.json()["data"]] == [201, 201], batch.text
    r = await client.post("/v1/ledger/checkpoints", json={}, headers=headers)
    assert r.status_code in (200, 201), r.text
    ids["checkpoint_size"] = str(r.json()["tree_size"])
    # The walk's erasure request discards the exports made before it: one more, built by _run_jobs.
    r = await client.post("/v1/exports/audit", json={}, headers=headers)
    assert r.status_code == 202, r.text
    ids["export_id"] = r.json()["id"]
    return ids


async def _walk(app, client, headers: dict, ids: dict[str, str]) -> dict[tuple[str, str], int]:
    answers = {}
    for method, path in _routes(app.openapi()):
        if path.startswith(("/v1/tenants", "/v1/operators")):  # operator routes: the tenant key is refused on both
            continue
        params = re.findall(r"{(\w+)}", path)
        url = path.format(**{**ids, **NOT_OBJECTS})
        body = BODIES.get((method, path), {"outlet_id": ids["outlet_id"]} if method in ("post", "put", "patch")
                          and not params else None)
        if path in QUERIES:
            url += "?" + QUERIES[path].format(**ids)
        r = await client.request(method.upper(), url, headers=headers, json=body)
        assert r.status_code < 500, (method, path, r.text)
        answers[(method, path)] = r.status_code
    return answers


async def _console(app, owner: Browser, ids: dict[str, str]) -> dict[str, int]:
    """Every GET page of the /app console, signed in as the tenant's owner."""
    # ``name``: an analytics table's CSV (/app/analytics/{name}.csv), a word, not an object.
    names = {**ids, "z_id": ids["z_report_id"], "message_id": ids["msg_id"], "name": "summary"}
    pages = {}
    for route in all_routes(app):
        if isinstance(getattr(route, "original_route", route), APIRoute) and route.path.startswith("/app") \
                and "GET" in route.methods:
            if route.path in ("/app/login", "/app/accept", "/app/logout"):
                continue
            r = await owner.get(route.path.format(**names))
            assert r.status_code < 500, (route.path, r.text[:2000])
            pages[route.path] = r.status_code
    return pages


async def _run_jobs(app, client, operator_headers, tenant_id: str) -> list[tuple]:
    """The tenant's outbox (webhooks, usage, ...) and its export jobs, worked through in the database they live
    in, as a worker would."""
    db = await database_of(client, app, operator_headers, tenant_id)
    # Only this tenant's events: the session's shared database holds other tests' (webhooks to hosts that do
    # not resolve, retried), which would take every claimed batch until the deadline.
    dispatcher = Dispatcher(db, app.state.settings, tenant_id=tenant_id)
    try:
        # Until nothing is due or being handled: handlers enqueue further events (a seal's usage, an anomaly,
        # its webhook), and a lease may still be held meanwhile (this dispatcher then claims nothing, which
        # is no sign the work is done).
        deadline = asyncio.get_running_loop().time() + 90
        while True:
            assert asyncio.get_running_loop().time() < deadline, "the tenant's outbox never settled"
            if not await dispatcher.run_once():
                if not await outbox_busy(db, tenant_id):
                    break
                await asyncio.sleep(0.2)
    finally:
        await dispatcher.close()
    while await export_jobs.run_one(db, app.state.settings) is not None:
        pass
    return await outbox_outcomes(db, tenant_id)


async def test_every_route_answers_a_dedicated_tenant_as_a_shared_one(tier_app, tier_client, operator_headers):
    app, client = tier_app, tier_client
    answers, pages, jobs = {}, {}, {}
    for n, tier in enumerate(TIERS):
        tenant, headers = await make_tenant(client, app, operator_headers, tier, f"{tier} SARL", f"W000000{n}B")
        ids = await _objects(app, client, tenant, headers)
        jobs[tier] = await _run_jobs(app, client, operator_headers, tenant["id"])
        export = (await client.get(f"/v1/exports/{ids['export_id']}", headers=headers)).json()
        assert export["status"] == "ready", (tier, export, export.get("error"))
        await make_user(app, {"tenant": tenant}, f"owner.{tenant['id'][-12:]}@walk.cd", "owner")
        owner = Browser(app)
        try:
            await owner.login(f"owner.{tenant['id'][-12:]}@walk.cd")
            # Signed in through the API too: a user's access token reaches the tenant's database.
            r = await login(client, f"owner.{tenant['id'][-12:]}@walk.cd")
            assert r.status_code == 200, r.text
            assert (await client.get("/v1/invoices", headers=bearer(r.json()))).json()["data"], tier
            pages[tier] = await _console(app, owner, ids)
        finally:
            await owner.aclose()
        answers[tier] = await _walk(app, client, headers, ids)
        # An invitation accepted (public, the token its credential), and the new user signed in.
        invited = {"email": f"invited.{tenant['id'][-12:]}@walk.cd", "name": "Invitée", "role": "cashier"}
        r = await client.post("/v1/users/invitations", json=invited, headers=headers)
        assert r.status_code == 201, r.text
        r = await client.post("/v1/users/accept", json={"token": r.json()["token"], "password": PASSWORD})
        assert r.status_code == 201, r.text
        assert (await login(client, invited["email"])).status_code == 200
    # The background work ended the same way (webhooks fail alike: nothing listens at hooks.example.com).
    assert jobs["shared"] == jobs["dedicated"] and jobs["dedicated"]
    shared, dedicated = answers["shared"], answers["dedicated"]
    assert {k: (shared[k], dedicated[k]) for k in shared if shared[k] != dedicated[k]} == {}
    assert {k: (pages["shared"][k], pages["dedicated"][k]) for k in pages["shared"]
            if pages["shared"][k] != pages["dedicated"][k]} == {}
    # Not a walk of refusals: most routes and pages served the dedicated tenant.
    assert sum(1 for s in dedicated.values() if s < 300) >= 60, sorted(dedicated.items())
    assert sum(1 for s in pages["dedicated"].values() if s < 300) >= 15, pages["dedicated"]
