"""Sealing over HTTP on SQLite and PostgreSQL: the seal contract, chaining, idempotency, rejections."""
from __future__ import annotations

import asyncio
import json
import shutil
import subprocess

import pytest

from tests.support.invoices import sample_invoice
from tests.support.verify import verify_independently


@pytest.fixture
async def shop(client, new_tenant):
    tenant, headers = await new_tenant("Shop SARL", "A7654321Z")
    outlet = (await client.post("/v1/outlets", json={"code": "SHOP1", "name": "Shop"}, headers=headers)).json()
    return tenant, headers, outlet


async def test_sealed_invoice_matches_the_contract(client, shop):
    tenant, headers, outlet = shop
    r = await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)
    assert r.status_code == 201, r.text
    inv = r.json()
    payload = inv["seal"]["payload"]
    assert payload["counter"] == 1 and inv["fiscal_number"] == "SHOP1-00000001"
    assert payload["prev_hash"] == "0" * 64
    assert payload["tenant_id"] == tenant["id"] and payload["outlet_id"] == outlet["id"]
    assert payload["issued_at"].endswith("Z")
    assert inv["totals"] == payload["totals"] == {
        "groups": [
            {"group": "A", "rate": "0", "amount": "5000.00", "base": "5000.00", "vat": "0.00"},
            {"group": "B", "rate": "0.16", "amount": "90000.00", "base": "90000.00", "vat": "14400.00"},
        ],
        "total": "109400.00", "vat_settled_by_credit": "0.00", "payable": "109400.00",
    }
    assert inv["seal"]["algorithm"] == "ES256" and inv["seal"]["key_id"] == payload["key_id"]
    assert inv["qr"].endswith(f"/verify/{inv['id']}?t={inv['tenant_id']}")

    jwk = (await client.get(f"/v1/keys/{inv['seal']['key_id']}")).json()
    assert {jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"], jwk["status"]} == {"EC", "P-256", "ES256", "sig", "active"}
    verify_independently(inv, jwk)
    jwks = (await client.get("/.well-known/jwks.json")).json()
    assert jwk["kid"] in {k["kid"] for k in jwks["keys"]}

    # The stored invoice is exactly what was answered.
    assert (await client.get(f"/v1/invoices/{inv['id']}", headers=headers)).json() == inv

    # The chain: the second invoice's prev_hash is the first's seal hash.
    second = (await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)).json()
    assert second["seal"]["payload"]["counter"] == 2
    assert second["seal"]["payload"]["prev_hash"] == inv["seal"]["hash"]


async def test_public_verification_page(client, shop):
    _, headers, outlet = shop
    body = sample_invoice(outlet["id"], type="FV", buyer={"type": "PM", "name": "Client Secret SA", "tax_id": "B999"})
    inv = (await client.post("/v1/invoices", json=body, headers=headers)).json()
    url = inv["qr"].split("://", 1)[1].split("/", 1)[1]
    page = await client.get(f"/{url}")
    assert page.status_code == 200 and "Facture authentique" in page.text
    # The buyer's name while its data is not erased or restricted (checked against the commitment), nothing else.
    assert "Client Secret SA" in page.text and "B999" not in page.text
    data = (await client.get(f"/{url}", headers={"Accept": "application/json"})).json()
    assert data["authentic"] is True and data["fiscal_number"] == inv["fiscal_number"]
    assert data["seller"] == {"name": "Shop SARL", "tax_id": "A7654321Z"}
    assert data["buyer"] == {"name": "Client Secret SA", "committed": True} and "B999" not in json.dumps(data)
    path, query = url.split("?")
    svg = await client.get(f"/{path}/qr.svg?{query}")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    for bad in ("inv_nope", "x" * 300, "%00", "bad$id", "../../etc/passwd"):
        for path in (f"/verify/{bad}", f"/verify/{bad}/qr.svg"):
            r = await client.get(path)
            assert r.status_code == 404, (path, r.status_code)
            assert r.json()["code"] in ("invoice_not_found", "not_found"), (path, r.text)


async def counter_of(client, headers, outlet_id) -> int:
    page = (await client.get("/v1/invoices", params={"outlet_id": outlet_id, "limit": 1}, headers=headers)).json()
    return page["data"][0]["counter"] if page["data"] else 0


@pytest.mark.parametrize("change, code, field", [
    ({"type": "XX"}, "invalid_invoice_type", "type"),
    ({"lines": []}, "lines_count", "lines"),
    ({"lines": [{"description": "x", "item_type": "TAX", "tax_group": "B", "quantity": "1", "unit_price": "1"}]},
     "tax_line_group_invalid", "lines[0].tax_group"),
    ({"lines": [{"description": "x", "item_type": "BIE", "tax_group": "L", "quantity": "1", "unit_price": "1"}]},
     "goods_line_group_invalid", "lines[0].tax_group"),
    ({"lines": [{"description": "x", "item_type": "TAX", "tax_group": "N", "quantity": "1", "unit_price": "1"}]},
     "group_n_without_m", "lines[0].tax_group"),
    ({"lines": [{"description": "x", "item_type": "BIE", "tax_group": "D", "quantity": "1", "unit_price": "1"}]},
     "group_d_requires_ao_buyer", "lines[0].tax_group"),
    ({"lines": [{"description": "x", "item_type": "BIE", "tax_group": "E", "quantity": "1", "unit_price": "1"}]},
     "group_e_requires_export", "lines[0].tax_group"),
    ({"type": "EV"}, "export_line_not_group_e", "lines[0].tax_group"),
    ({"buyer": {"type": "PM", "name": "X"}}, "buyer_tax_id_required", "buyer.tax_id"),
    ({"buyer": {"type": "AO", "name": "Embassy"}}, "buyer_exemption_ref_required", "buyer.exemption_ref"),
    ({"type": "FA"}, "credit_note_nature_required", "nature"),
    ({"type": "FA", "nature": "COR"}, "credit_note_original_required", "original"),
    ({"type": "FA", "nature": "COR", "original": "SHOP1-00009999"}, "credit_note_original_not_found", "original"),
    ({"nature": "COR"}, "nature_not_allowed", "nature"),
    ({"payments": [{"method": "ESPECES", "amount": "1.00"}]}, "payments_mismatch", "payments"),
    ({"payments": [{"method": "BITCOIN", "amount": "109400"}]}, "invalid_payment_method", "payments[0].method"),
    ({"currency": "USD"}, "currency_unsupported", "currency"),
    ({"lines": [{"description": "x", "item_type": "BIE", "tax_group": "B", "quantity": "1.0001", "unit_price": "1"}]},
     "quantity_precision", "lines[0].quantity"),
    ({"lines": [{"description": "x", "item_type": "BIE", "tax_group": "B", "quantity": "1", "unit_price": "1.001"}]},
     "unit_price_precision", "lines[0].unit_price"),
    ({"lines": [{"description": "x", "item_type": "BIE", "tax_group": "B", "quantity": "0", "unit_price": "1"}]},
     "quantity_invalid", "lines[0].quantity"),
    ({"lines": [{"description": "", "item_type": "BIE", "tax_group": "B", "quantity": "1", "unit_price": "1"}]},
     "description_length", "lines[0].description"),
    ({"lines": [{"description": "x", "item_type": "BIE", "tax_group": "B", "quantity": "1e999999", "unit_price": "1"}]},
     "validation_failed", "lines[0].quantity"),
    ({"exchange": {"currency": "USD", "rate": "0", "date": "2026-11-22"}}, "exchange_invalid", "exchange.rate"),
    ({"outlet_id": "out_nope"}, "outlet_not_found", "outlet_id"),
    ({"surprise": True}, "validation_failed", "surprise"),
])
async def test_every_rejection_is_a_422_that_consumes_no_number(client, shop, change, code, field):
    _, headers, outlet = shop
    assert (await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)).status_code == 201
    r = await client.post("/v1/invoices", json=sample_invoice(outlet["id"], **change), headers=headers)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert problem["code"] == code and problem["field"] == field, problem
    assert await counter_of(client, headers, outlet["id"]) == 1
    ok = await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)
    assert ok.json()["counter"] == 2  # the rejected request consumed nothing


async def test_credit_notes_never_exceed_their_original(client, shop):
    _, headers, outlet = shop
    original = (await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)).json()
    assert original["totals"]["total"] == "109400.00"
    credit = {"type": "FA", "nature": "COR", "original": original["fiscal_number"], "lines": [
        {"description": "Retour riz", "item_type": "BIE", "tax_group": "B", "quantity": "1", "unit_price": "45000"}]}
    r1 = await client.post("/v1/invoices", json=sample_invoice(outlet["id"], **credit), headers=headers)
    assert r1.status_code == 201, r1.text
    assert r1.json()["seal"]["payload"]["original"] == original["fiscal_number"]
    r2 = await client.post("/v1/invoices", json=sample_invoice(outlet["id"], **credit), headers=headers)
    assert r2.status_code == 201  # 2 x 52,200 = 104,400 <= 109,400
    r3 = await client.post("/v1/invoices", json=sample_invoice(outlet["id"], **credit), headers=headers)
    assert r3.status_code == 422 and r3.json()["code"] == "credit_note_exceeds_original"
    bad = await client.post("/v1/invoices", json=sample_invoice(outlet["id"], type="EA", nature="COR",
                            original=original["fiscal_number"], lines=[
                                {"description": "x", "item_type": "BIE", "tax_group": "E", "quantity": "1",
                                 "unit_price": "1"}]), headers=headers)
    assert bad.json()["code"] == "credit_note_original_type_mismatch"


async def test_idempotency(client, shop):
    _, headers, outlet = shop
    body = sample_invoice(outlet["id"])
    key = headers | {"Idempotency-Key": "order-4711"}
    first = await client.post("/v1/invoices", json=body, headers=key)
    again = await client.post("/v1/invoices", json=body, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    other = await client.post("/v1/invoices", json=sample_invoice(outlet["id"], reference="x"), headers=key)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert await counter_of(client, headers, outlet["id"]) == 1
    too_long = await client.post("/v1/invoices", json=body, headers=headers | {"Idempotency-Key": "k" * 256})
    assert too_long.status_code == 422


async def test_concurrent_retries_make_one_invoice(client, shop):
    _, headers, outlet = shop
    body = sample_invoice(outlet["id"])
    key = headers | {"Idempotency-Key": "burst-1"}
    answers = await asyncio.gather(*[client.post("/v1/invoices", json=body, headers=key) for _ in range(20)])
    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {201, 409}, statuses
    sealed = {a.json()["id"] for a in answers if a.status_code == 201}
    assert len(sealed) == 1
    for a in answers:
        if a.status_code == 409:
            assert a.json()["code"] == "idempotency_key_in_use"
    assert await counter_of(client, headers, outlet["id"]) == 1


async def test_reference_unique_per_outlet_and_restricted_keys(client, shop):
    _, headers, outlet = shop
    other = (await client.post("/v1/outlets", json={"code": "SHOP2", "name": "Other"}, headers=headers)).json()
    r = await client.post("/v1/invoices", json=sample_invoice(outlet["id"], reference="T-1"), headers=headers)
    assert r.status_code == 201
    r = await client.post("/v1/invoices", json=sample_invoice(outlet["id"], reference="T-1"), headers=headers)
    assert r.status_code == 409 and r.json()["code"] == "reference_already_used"
    assert (await client.post("/v1/invoices", json=sample_invoice(other["id"], reference="T-1"),
                              headers=headers)).status_code == 201
    till = (await client.post("/v1/api-keys", json={"name": "till", "outlet_id": outlet["id"]}, headers=headers)).json()
    till_h = {"Authorization": f"Bearer {till['api_key']}"}
    r = await client.post("/v1/invoices", json=sample_invoice(other["id"]), headers=till_h)
    assert r.status_code == 403 and r.json()["code"] == "api_key_outlet_restricted"
    assert (await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=till_h)).status_code == 201
    listed = (await client.get("/v1/invoices", headers=till_h)).json()["data"]
    assert {i["outlet_id"] for i in listed} == {outlet["id"]}


async def test_list_filters(client, shop):
    _, headers, outlet = shop
    first = (await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)).json()
    for _ in range(2):
        await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)
    got = (await client.get("/v1/invoices", params={"fiscal_number": first["fiscal_number"]}, headers=headers)).json()
    assert [i["id"] for i in got["data"]] == [first["id"]]
    got = (await client.get("/v1/invoices", params={"issued_at_lt": first["issued_at"]}, headers=headers)).json()
    assert got["data"] == []
    got = (await client.get("/v1/invoices", params={"issued_at_gte": first["issued_at"], "limit": 2},
                            headers=headers)).json()
    assert len(got["data"]) == 2 and got["has_more"] is True
    r = await client.get("/v1/invoices", params={"issued_at_gte": "2026-01-01T00:00:00"}, headers=headers)
    assert r.status_code == 422  # naive timestamps are ambiguous


async def test_sealed_rows_cannot_be_rewritten(db, client, shop):
    from sqlalchemy import text

    from stalela.tenancy.context import bind_tenant

    tenant, headers, outlet = shop
    inv = (await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)).json()
    for statement in ("UPDATE invoices SET total_cents = 1 WHERE id = :i", "DELETE FROM invoices WHERE id = :i"):
        with pytest.raises(Exception, match="append-only|permission denied"):
            async with db.transaction() as s:
                await bind_tenant(s, tenant["id"])
                await s.execute(text(statement), {"i": inv["id"]})
    assert (await client.get(f"/v1/invoices/{inv['id']}", headers=headers)).json() == inv


async def test_inactive_outlets_and_suspended_tenants_cannot_seal(client, shop, operator_headers):
    tenant, headers, outlet = shop
    await client.patch(f"/v1/outlets/{outlet['id']}", json={"status": "inactive"}, headers=headers)
    r = await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)
    assert r.status_code == 409 and r.json()["code"] == "outlet_inactive"
    await client.patch(f"/v1/outlets/{outlet['id']}", json={"status": "active"}, headers=headers)
    await client.post(f"/v1/tenants/{tenant['id']}/suspend", headers=operator_headers)
    r = await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)
    assert r.status_code == 403 and r.json()["code"] == "tenant_suspended"
    await client.post(f"/v1/tenants/{tenant['id']}/activate", headers=operator_headers)
    r = await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)
    assert r.status_code == 201 and r.json()["counter"] == 1


async def test_ttc_exchange_and_payments_round_trip(client, shop):
    _, headers, outlet = shop
    body = sample_invoice(
        outlet["id"], price_mode="ttc",
        lines=[{"description": "Boisson", "item_type": "BIE", "tax_group": "B", "quantity": "3", "unit_price": "1160"}],
        payments=[{"method": "ESPECES", "amount": "3000"}, {"method": "MOBILEMONEY", "amount": "480"}],
        exchange={"currency": "USD", "rate": "2800", "date": "2026-11-22"},
    )
    r = await client.post("/v1/invoices", json=body, headers=headers)
    assert r.status_code == 201, r.text
    inv = r.json()
    assert inv["totals"]["groups"] == [{"group": "B", "rate": "0.16", "amount": "3480.00", "base": "3000.00",
                                        "vat": "480.00"}]
    assert inv["totals"]["total"] == "3480.00"
    assert inv["exchange"]["currency"] == "USD" and inv["seal"]["payload"]["exchange"] == inv["exchange"]
    assert [p["method"] for p in inv["payments"]] == ["ESPECES", "MOBILEMONEY"]


async def test_expired_idempotency_keys_are_free_again(client, shop, database_url):
    from tests.support.tamper import tamper

    tenant, headers, outlet = shop
    key = headers | {"Idempotency-Key": "old-key"}
    first = await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=key)
    tamper(database_url, [("UPDATE idempotency_keys SET expires_at = created_at WHERE tenant_id = %(t)s",
                           {"t": tenant["id"]})])
    again = await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=key)
    assert again.status_code == 201 and "idempotent-replayed" not in again.headers
    assert again.json()["counter"] == first.json()["counter"] + 1


async def test_a_restricted_key_cannot_read_through_a_replay(client, shop):
    _, headers, outlet = shop
    other = (await client.post("/v1/outlets", json={"code": "SHOP2", "name": "Other"}, headers=headers)).json()
    till = (await client.post("/v1/api-keys", json={"name": "till", "outlet_id": other["id"]}, headers=headers)).json()
    body = sample_invoice(outlet["id"])
    assert (await client.post("/v1/invoices", json=body, headers=headers | {"Idempotency-Key": "k1"})).status_code == 201
    r = await client.post("/v1/invoices", json=body,
                          headers={"Authorization": f"Bearer {till['api_key']}", "Idempotency-Key": "k1"})
    assert r.status_code == 403 and r.json()["code"] == "api_key_outlet_restricted"


async def test_body_without_content_type_is_a_415(client, shop):
    _, headers, outlet = shop
    r = await client.post("/v1/invoices", content=json.dumps(sample_invoice(outlet["id"])).encode(), headers=headers)
    assert r.status_code == 415 and r.json()["request_id"] and r.json()["instance"] == "/v1/invoices"


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext (poppler-utils) not installed")
async def test_an_invoice_as_pdf(client, shop, new_tenant, tmp_path):
    _, headers, outlet = shop
    body = sample_invoice(outlet["id"], buyer={"type": "PM", "name": "Client SA", "tax_id": "B42"})
    inv = (await client.post("/v1/invoices", json=body, headers=headers)).json()
    r = await client.get(f"/v1/invoices/{inv['id']}/pdf", params={"lang": "en"}, headers=headers)
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.headers["content-disposition"] == f'attachment; filename="{inv["fiscal_number"]}.pdf"'
    (tmp_path / "inv.pdf").write_bytes(r.content)
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "inv.pdf"), "-"], check=True,
                          capture_output=True, text=True).stdout
    for expected in (inv["fiscal_number"], "Shop SARL", "A7654321Z", "Sac de riz 25 kg", "90,000.00", "14,400.00",
                     "109,400.00", inv["seal"]["hash"], inv["seal"]["key_id"], "Client SA"):
        assert expected in text, expected
    # Another tenant's key gets 404, like the JSON.
    _, other = await new_tenant("Other SARL", "O1")
    assert (await client.get(f"/v1/invoices/{inv['id']}/pdf", headers=other)).status_code == 404
