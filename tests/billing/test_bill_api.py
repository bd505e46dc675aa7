"""The tenant's bills API and the operator's issuer API."""
from __future__ import annotations

from stalela.billing import bill_tasks
from stalela.db.base import utcnow
from tests.billing.bill_support import at, cdf_plan, make_issuer, periods, use
from tests.billing.bill_support import settings  # noqa: F401  (no API-call metering in these tests)


async def test_bill_api_shapes_and_isolation(app, client, new_tenant, operator_headers, settings):
    await make_issuer(client, new_tenant, operator_headers)
    tenant, headers = await new_tenant("Shapes SARL", "S1234567")
    await cdf_plan(client, operator_headers, tenant["id"])
    _, other_headers = await new_tenant("Other SARL", "O1234567")
    p1, p2, current = periods()
    await use(client, headers, "a", "api_calls", "48", at(p1, 3))       # 12.00
    await use(client, headers, "b", "api_calls", "2", at(p2, 1, 10))    # 0.50
    await use(client, headers, "c", "api_calls", "2", at(p2, 1, 20))    # 0.50
    await use(client, headers, "d", "api_calls", "2", at(p2, 9))        # 0.50
    await use(client, headers, "e", "api_calls", "2", utcnow())         # 0.50
    for period in (p1, p2):
        await bill_tasks.close_period(app.state.db, settings, period, tenant_ids=[tenant["id"]], finalize_now=True)

    r = await client.get("/v1/billing/invoices?limit=1", headers=headers)
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["has_more"] is True and set(page["data"][0]) == {"id", "period", "status", "total", "currency",
                                                                   "invoice_id"}
    newest = page["data"][0]
    assert newest["period"] == p2
    r = await client.get(f"/v1/billing/invoices?starting_after={newest['id']}", headers=headers)
    assert [b["period"] for b in r.json()["data"]] == [p1]

    bill_id = newest["id"]
    body = (await client.get(f"/v1/billing/invoices/{bill_id}", headers=headers)).json()
    assert body["invoice"]["seal"]["algorithm"] == "ES256" and body["invoice"]["id"] == newest["invoice_id"]
    usage = (await client.get(f"/v1/billing/invoices/{bill_id}/usage", headers=headers)).json()
    [line] = usage["data"]
    assert (line["resource"], line["rate_card_version"], line["event_count"]) == ("api_calls", 1, 3)
    assert len(line["events_sha256"]) == 64
    assert [(d["quantity"], d["event_count"]) for d in line["days"]] == [("4", 2), ("2", 1)]
    r = await client.get(f"/v1/billing/invoices/{bill_id}/pdf", headers=headers)
    assert r.status_code == 200 and r.content.startswith(b"%PDF")
    estimate = (await client.get("/v1/billing/estimate", headers=headers)).json()
    assert (estimate["period"], estimate["total"]) == (current, "0.50")

    for path in ("", "/usage", "/pdf"):
        r = await client.get(f"/v1/billing/invoices/{bill_id}{path}", headers=other_headers)
        assert r.status_code == 404 and r.json()["code"] == "bill_not_found", path
    assert (await client.get("/v1/billing/invoices", headers=other_headers)).json()["data"] == []


async def test_issuer_api(client, new_tenant, operator_headers):
    issuer, _, outlet = await make_issuer(client, new_tenant, operator_headers)
    r = await client.get("/v1/ops/billing/issuer", headers=operator_headers)
    assert r.status_code == 200 and (r.json()["tenant_id"], r.json()["outlet_id"]) == (issuer["id"], outlet["id"])
    other, other_headers = await new_tenant("Not Issuer SARL", "N1234567")
    r = await client.put("/v1/ops/billing/issuer", json={"tenant_id": other["id"], "outlet_id": outlet["id"]},
                         headers=operator_headers)
    assert r.status_code == 422 and r.json()["code"] == "outlet_not_found"
    r = await client.put("/v1/ops/billing/issuer", json={"tenant_id": "ten_nope", "outlet_id": outlet["id"]},
                         headers=operator_headers)
    assert r.status_code == 422 and r.json()["code"] == "tenant_not_found"
    r = await client.put("/v1/ops/billing/issuer", json={"tenant_id": issuer["id"]}, headers=operator_headers)
    assert r.status_code == 422
    assert (await client.get("/v1/ops/billing/issuer", headers=other_headers)).status_code == 401
