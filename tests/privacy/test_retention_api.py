"""The retention API on both databases: policies (never below the statutory floor), legal holds, who may
use them, and DELETE /v1/invoices/{id} (409 retention_required inside the retention, ledger_append_only
after it: a sealed invoice is never deleted)."""
from __future__ import annotations

from datetime import date, timedelta

import pytest

from stalela.privacy import retention_service as service
from tests.privacy.support import now
from tests.support.ar import ar_outlet, ar_tenant, receipt
from tests.support.invoices import sample_invoice

POLICIES = "/v1/privacy/retention/policies"
HOLDS = "/v1/privacy/retention/holds"


async def test_a_fiscal_policy_below_the_statutory_floor_is_a_422_naming_field_and_floor(client, new_tenant):
    _, headers = await new_tenant()
    r = await client.put(f"{POLICIES}/fiscal", json={"years": 5}, headers=headers)
    assert r.status_code == 422, r.text
    body = r.json()
    assert (body["code"], body["field"]) == ("retention_below_statutory_minimum", "years")
    assert body["floor"] == {"jurisdiction": "CD", "years": 10, "citation": "OHADA AUDCIF (2017) art. 24",
                             "covers": body["floor"]["covers"], "counted_from": "end of the financial year (calendar year)"}
    assert r.headers["content-type"].startswith("application/problem+json")

    policies = (await client.get(POLICIES, headers=headers)).json()
    fiscal = next(p for p in policies["data"] if p["category"] == "fiscal")
    assert policies["jurisdiction"] == "CD"
    assert (fiscal["source"], fiscal["years"], fiscal["days"]) == ("statutory", 10, 0) and fiscal["rules"] == []

    r = await client.put(f"{POLICIES}/fiscal", json={"years": 12, "days": 15}, headers=headers)
    assert r.status_code == 200, r.text
    assert (r.json()["source"], r.json()["years"], r.json()["days"]) == ("tenant", 12, 15)
    assert r.json()["floor"]["years"] == 10 and r.json()["updated_by"].startswith("api_key:")
    fiscal = next(p for p in (await client.get(POLICIES, headers=headers)).json()["data"] if p["category"] == "fiscal")
    assert fiscal["years"] == 12
    # Days alone keep the floor's years and add to them.
    assert (await client.put(f"{POLICIES}/fiscal", json={"days": 30}, headers=headers)).json()["years"] == 10


async def test_argentinas_floor_cites_its_code(client):
    _, headers = await ar_tenant(client)
    r = await client.put(f"{POLICIES}/fiscal", json={"years": 9}, headers=headers)
    assert r.status_code == 422 and r.json()["floor"]["citation"] == "CCyC art. 328; Decreto 1397/79 art. 48"


@pytest.mark.parametrize("path, body, field", [
    ("fiscal", {"years": -1}, "years"),
    ("operational", {"days": 36501}, "days"),
    ("operational", {"grace_days": 0}, "grace_days"),
    ("operational", {"weeks": 2}, "weeks"),
    ("everything", {"days": 1}, "category"),
])
async def test_policy_inputs_are_checked(client, new_tenant, path, body, field):
    _, headers = await new_tenant()
    r = await client.put(f"{POLICIES}/{path}", json=body, headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field


async def test_non_fiscal_categories_have_defaults_a_tenant_may_change(client, new_tenant):
    _, headers = await new_tenant()
    data = {p["category"]: p for p in (await client.get(POLICIES, headers=headers)).json()["data"]}
    assert set(data) == {"personal", "fiscal", "operational", "secret"}
    assert {r["purger"]: (r["anchor"], r["days"]) for r in data["operational"]["rules"]} == {
        "expired_idempotency_records": ("expires_at", 0), "delivered_outbox_events": ("done_at", 30),
        "webhook_attempts": ("started_at", 30), "settled_webhook_messages": ("updated_at", 30),
        "expired_device_nonces": ("expires_at", 0)}
    assert data["operational"]["source"] == "default" and data["operational"]["grace_days"] == 7
    assert {r["purger"]: (r["anchor"], r["days"]) for r in data["personal"]["rules"]} == {
        "expired_invitations": ("expires_at", 0), "stale_invoice_drafts": ("updated_at", 90),
        "settled_connector_deliveries": ("received_at", 30)}
    r = await client.put(f"{POLICIES}/personal", json={"years": 1, "days": 2, "grace_days": 3}, headers=headers)
    assert r.status_code == 200
    # One policy per category: it sets the period of every purger of the category (invitations and drafts).
    assert {x["purger"]: (x["anchor"], x["years"], x["days"]) for x in r.json()["rules"]} == {
        "expired_invitations": ("expires_at", 1, 2), "stale_invoice_drafts": ("updated_at", 1, 2),
        "settled_connector_deliveries": ("received_at", 1, 2)}
    assert r.json()["grace_days"] == 3
    log = (await client.get("/v1/audit-log", headers=headers)).json()["data"]
    assert log[0]["action"] == "privacy.retention_policy_set" and log[0]["target"] == "personal"


async def test_hold_inputs_are_checked(client, new_tenant):
    _, headers = await new_tenant()
    r = await client.post(HOLDS, json={"reason": "x", "scope": {"outlet_id": "out_nope"}}, headers=headers)
    assert (r.status_code, r.json()["code"], r.json()["field"]) == (422, "outlet_not_found", "scope.outlet_id")
    r = await client.post(HOLDS, json={"reason": "x", "scope": {"from": "2026-02-01", "to": "2026-01-01"}},
                          headers=headers)
    assert r.status_code == 422 and r.json()["field"] == "scope"
    r = await client.post(HOLDS, json={"reason": "", "scope": {}}, headers=headers)
    assert r.status_code == 422 and r.json()["field"] == "reason"
    r = await client.post(HOLDS, json={"reason": "x", "scope": {"from": 0}}, headers=headers)
    assert r.status_code == 422 and r.json()["field"] == "scope.from"
    r = await client.delete(f"{HOLDS}/hold_nope", headers=headers)
    assert (r.status_code, r.json()["code"]) == (404, "legal_hold_not_found")


async def test_only_owners_and_admins_manage_retention(client, new_tenant):
    _, headers = await new_tenant()
    key = await client.post("/v1/api-keys", json={"name": "till", "scopes": ["invoices:write", "reports"]},
                            headers=headers)
    assert key.status_code == 201, key.text
    till = {"Authorization": f"Bearer {key.json()['api_key']}"}
    for method, path, body in [("GET", POLICIES, None), ("PUT", f"{POLICIES}/operational", {"days": 1}),
                               ("GET", HOLDS, None), ("POST", HOLDS, {"reason": "x"}),
                               ("GET", "/v1/privacy/retention/preview", None)]:
        r = await client.request(method, path, json=body, headers=till)
        assert (r.status_code, r.json()["code"]) == (403, "insufficient_permissions"), (method, path)


async def test_deleting_a_sealed_invoice_is_refused_with_its_retention(client, new_tenant):
    _, headers = await new_tenant()
    outlet = (await client.post("/v1/outlets", json={"code": "D1", "name": "Till"}, headers=headers)).json()
    invoice = (await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)).json()
    issued = date.fromisoformat(invoice["seal"]["payload"]["issued_at"][:10])
    until = f"{issued.year + 10}-12-31"

    r = await client.delete(f"/v1/invoices/{invoice['id']}", headers=headers)
    assert r.status_code == 409, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert {k: r.json()[k] for k in ("code", "retain_until", "legal_hold", "jurisdiction", "citation")} == {
        "code": "retention_required", "retain_until": until, "legal_hold": False, "jurisdiction": "CD",
        "citation": "OHADA AUDCIF (2017) art. 24"}

    # A longer policy moves the date; a hold on the invoice's outlet suspends it.
    await client.put(f"{POLICIES}/fiscal", json={"years": 11}, headers=headers)
    assert (await client.delete(f"/v1/invoices/{invoice['id']}", headers=headers)).json()["retain_until"] == \
        f"{issued.year + 11}-12-31"
    hold = (await client.post(HOLDS, json={"reason": "litigation", "scope": {"outlet_id": outlet["id"]}},
                              headers=headers)).json()
    r = await client.delete(f"/v1/invoices/{invoice['id']}", headers=headers)
    assert (r.json()["code"], r.json()["retain_until"], r.json()["legal_hold"]) == ("retention_required", None, True)
    await client.delete(f"{HOLDS}/{hold['id']}", headers=headers)

    # The last day of the retention is still inside it; the day after, the answer is that the ledger is append-only.
    last = date(issued.year + 11, 12, 31)
    with service.use_clock(lambda: now().replace(year=last.year, month=12, day=31, hour=23)):
        assert (await client.delete(f"/v1/invoices/{invoice['id']}", headers=headers)).json()["code"] == \
            "retention_required"
    with service.use_clock(lambda: now().replace(year=last.year + 1, month=1, day=1, hour=0) + timedelta(minutes=1)):
        r = await client.delete(f"/v1/invoices/{invoice['id']}", headers=headers)
    assert (r.status_code, r.json()["code"], r.json()["retain_until"]) == (409, "ledger_append_only", last.isoformat())
    # Never deleted: it is still there, and still verifies.
    assert (await client.get(f"/v1/invoices/{invoice['id']}", headers=headers)).status_code == 200

    _, stranger = await new_tenant("Stranger SARL", "S0000001")
    r = await client.delete(f"/v1/invoices/{invoice['id']}", headers=stranger)
    assert (r.status_code, r.json()["code"]) == (404, "invoice_not_found")


async def test_an_argentine_receipt_is_kept_ten_years_too(client):
    _, headers = await ar_tenant(client, name="Retención SRL")
    outlet = await ar_outlet(client, headers)
    sealed = await client.post("/v1/invoices", json=receipt(outlet["id"]), headers=headers)
    assert sealed.status_code == 201, sealed.text
    r = await client.delete(f"/v1/invoices/{sealed.json()['id']}", headers=headers)
    assert r.json()["code"] == "retention_required" and r.json()["jurisdiction"] == "AR"
    assert r.json()["retain_until"] == f"{int(sealed.json()['seal']['payload']['issued_at'][:4]) + 10}-12-31"


async def test_the_openapi_document_names_the_new_answers(app):
    paths = app.openapi()["paths"]
    assert "409" in paths["/v1/invoices/{invoice_id}"]["delete"]["responses"]
    assert "retention_required" in paths["/v1/invoices/{invoice_id}"]["delete"]["responses"]["409"]["description"]
    put = paths["/v1/privacy/retention/policies/{category}"]["put"]["responses"]["422"]
    assert "retention_below_statutory_minimum" in put["description"]
    assert {"401", "403", "404", "422"} <= set(paths["/v1/privacy/retention/holds/{hold_id}"]["delete"]["responses"])


@pytest.mark.parametrize("value", [False, True, "3", 3.0])
async def test_policy_figures_are_whole_numbers_not_booleans_or_strings(client, new_tenant, value):
    _, headers = await new_tenant()
    r = await client.put(f"{POLICIES}/personal", json={"days": value}, headers=headers)
    assert r.status_code == 422 and r.json()["field"] == "days", r.text
