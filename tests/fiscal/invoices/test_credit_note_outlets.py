"""A credit note's original must be visible to the caller and, by default, on the credit note's outlet.

Otherwise the answer is exactly the answer for a fiscal number that does not exist: a till's key or
a cashier restricted to one outlet can neither credit another outlet's sale nor learn from the error
that it exists, what type it is or what it amounts to.
"""
from __future__ import annotations

import httpx
import pytest

from stalela.app import create_app
from tests.auth.test_users import bearer, login, make_user
from tests.auth.test_users import settings  # noqa: F401 - cheap Argon2 for the cashier's login
from tests.conftest import make_settings
from tests.support.invoices import sample_invoice

RETURN = [{"description": "Retour", "item_type": "BIE", "tax_group": "B", "quantity": "1", "unit_price": "1000"}]


@pytest.fixture
async def shops(client, new_tenant):
    tenant, root = await new_tenant("Two Shops SARL", "A1111111Z")
    o1, o2 = [(await client.post("/v1/outlets", json={"code": c, "name": c}, headers=root)).json()
              for c in ("CNA", "CNB")]
    sale_o2 = (await client.post("/v1/invoices", json=sample_invoice(o2["id"]), headers=root)).json()
    till = (await client.post("/v1/api-keys", json={"name": "till 1", "outlet_id": o1["id"]}, headers=root)).json()
    return {"tenant": tenant, "root": root, "o1": o1, "o2": o2, "sale_o2": sale_o2,
            "till": {"Authorization": f"Bearer {till['api_key']}"}}


def credit(outlet_id, original):
    return sample_invoice(outlet_id, type="FA", nature="COR", original=original, lines=RETURN)


async def absent_answer(client, headers, outlet_id):
    """What the caller gets for a fiscal number that was never issued (same shape as a real one)."""
    r = await client.post("/v1/invoices", json=credit(outlet_id, "CNB-00009999"), headers=headers)
    return r.status_code, r.json()


async def test_a_till_key_cannot_credit_another_outlets_invoice_nor_learn_of_it(client, shops):
    s = shops
    r = await client.post("/v1/invoices", json=credit(s["o1"]["id"], s["sale_o2"]["fiscal_number"]), headers=s["till"])
    status, absent = await absent_answer(client, s["till"], s["o1"]["id"])
    assert r.status_code == status != 201, r.text
    body = r.json()
    assert body["code"] == absent["code"] == "credit_note_original_not_found" and body["field"] == "original"
    # The detail names only what the caller sent: nothing of the other outlet's invoice.
    assert body["detail"] == absent["detail"].replace("CNB-00009999", s["sale_o2"]["fiscal_number"])
    for secret in (s["sale_o2"]["totals"]["total"], "109", s["o2"]["id"], "FV", "exceeds", "credits"):
        assert secret not in body["detail"], body
    # Nothing was sealed: the till's outlet's counter did not move.
    page = (await client.get("/v1/invoices", params={"outlet_id": s["o1"]["id"]}, headers=s["root"])).json()
    assert page["data"] == []


async def test_a_cashier_of_one_outlet_gets_the_same_answer(client, shops):
    s = shops
    await make_user(client, s["root"], "cashier@shops.cd", "cashier", [s["o1"]["id"]])
    cashier = bearer((await login(client, "cashier@shops.cd", tenant_id=s["tenant"]["id"])).json())
    r = await client.post("/v1/invoices", json=credit(s["o1"]["id"], s["sale_o2"]["fiscal_number"]), headers=cashier)
    status, absent = await absent_answer(client, cashier, s["o1"]["id"])
    assert (r.status_code, r.json()["code"]) == (status, absent["code"]) == (422, "credit_note_original_not_found")


async def test_even_an_unrestricted_key_credits_on_the_originals_outlet_by_default(client, shops):
    s = shops
    r = await client.post("/v1/invoices", json=credit(s["o1"]["id"], s["sale_o2"]["fiscal_number"]), headers=s["root"])
    assert r.status_code == 422 and r.json()["code"] == "credit_note_original_not_found", r.text
    r = await client.post("/v1/invoices", json=credit(s["o2"]["id"], s["sale_o2"]["fiscal_number"]), headers=s["root"])
    assert r.status_code == 201, r.text


async def test_across_outlets_when_allowed_but_never_beyond_the_callers_outlets(database_url, tmp_path,
                                                                                 operator_headers):
    settings = make_settings(database_url, tmp_path, credit_notes_across_outlets=True, rate_limit_burst=1000)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            created = await client.post("/v1/tenants", json={"name": "Across SARL", "tax_id": "A2222222Z",
                                                             "jurisdiction": "CD"}, headers=operator_headers)
            root = {"Authorization": f"Bearer {created.json()['api_key']}"}
            o1, o2 = [(await client.post("/v1/outlets", json={"code": c, "name": c}, headers=root)).json()
                      for c in ("XA", "XB")]
            sale = (await client.post("/v1/invoices", json=sample_invoice(o2["id"]), headers=root)).json()
            key = (await client.post("/v1/api-keys", json={"name": "till", "outlet_id": o1["id"]}, headers=root)).json()
            till = {"Authorization": f"Bearer {key['api_key']}"}
            r = await client.post("/v1/invoices", json=credit(o1["id"], sale["fiscal_number"]), headers=till)
            assert r.status_code == 422 and r.json()["code"] == "credit_note_original_not_found", r.text
            r = await client.post("/v1/invoices", json=credit(o1["id"], sale["fiscal_number"]), headers=root)
            assert r.status_code == 201, r.text
