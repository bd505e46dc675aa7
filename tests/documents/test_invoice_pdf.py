"""GET /v1/invoices/{id}/pdf over HTTP: layouts, languages (the tenant's by default), clear problems for
bad parameters, local time, names instead of codes, negative credit notes, no developer text."""
from __future__ import annotations

import pytest

from stalela.i18n import localizer
from tests.documents.printing import needs_poppler, page_size_mm, pdf_text
from tests.support.invoices import sample_invoice

pytestmark = needs_poppler


@pytest.fixture
async def shop(client, new_tenant):
    _, headers = await new_tenant("Ду́кан SARL", "A7654321Z")  # a Cyrillic seller name, with a combining accent
    outlet = (await client.post("/v1/outlets", json={"code": "PDF1", "name": "Gombe", "address": "1 av. Kasa-Vubu"},
                                headers=headers)).json()
    body = sample_invoice(outlet["id"], buyer={"type": "PM", "name": "شركة النور", "tax_id": "B42"},
                          payments=[{"method": "MOBILEMONEY", "amount": "109400.00"}])
    invoice = (await client.post("/v1/invoices", json=body, headers=headers)).json()
    return headers, outlet, invoice


async def pdf(client, headers, invoice_id: str, **params):
    return await client.get(f"/v1/invoices/{invoice_id}/pdf", params=params, headers=headers)


async def test_a4_in_the_tenants_language_by_default(client, shop):
    headers, outlet, inv = shop
    r = await pdf(client, headers, inv["id"])
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.headers["content-disposition"] == f'attachment; filename="{inv["fiscal_number"]}.pdf"'
    width, height = page_size_mm(r.content)
    assert round(width) == 210 and round(height) == 297
    text = pdf_text(r.content)
    issued = localizer("fr").datetime(inv["issued_at"], "Africa/Kinshasa", seconds=True)
    for expected in ("Facture de vente (FV)", "Ду́кан SARL", "شركة", "Personne morale (PM)", "16 %", "109 400,00",
                     "Mobile money (MOBILEMONEY)", issued, "1 av. Kasa-Vubu", inv["qr"].split("?")[0],
                     inv["seal"]["key_id"], inv["seal"]["hash"][:32]):
        assert expected in text, expected
    assert "GET /v1/keys" not in text and "0.16" not in text and inv["issued_at"] not in text


async def test_receipt_layout_is_80_mm_wide_and_fitted(client, shop):
    headers, _, inv = shop
    r = await pdf(client, headers, inv["id"], layout="receipt", lang="es")
    assert r.status_code == 200
    assert r.headers["content-disposition"] == f'attachment; filename="{inv["fiscal_number"]}-receipt.pdf"'
    width, height = page_size_mm(r.content)
    assert round(width) == 80 and 100 < height < 297, (width, height)
    text = pdf_text(r.content)
    assert "Factura de venta (FV)" in text and "Dinero móvil (MOBILEMONEY)" in text and "16 %" in text


async def test_english_and_a_credit_note_reads_negative(client, shop):
    headers, outlet, inv = shop
    note = (await client.post("/v1/invoices", json={"outlet_id": outlet["id"], "type": "FA", "nature": "COR",
                                                    "original": inv["fiscal_number"],
                                                    "lines": [sample_invoice(outlet["id"])["lines"][1]]},
                              headers=headers))
    assert note.status_code == 201, note.text
    text = pdf_text((await pdf(client, headers, note.json()["id"], lang="en")).content)
    for expected in ("Credit note (FA)", f"Corrects invoice {inv['fiscal_number']}", "Correction (COR)",
                     "-CDF5,000.00", "Awaiting certification by the DGI"):
        assert expected in text, expected


@pytest.mark.parametrize("params,code,field", [
    ({"layout": "letter"}, "invalid_layout", "layout"),
    ({"lang": "de"}, "invalid_locale", "lang"),
    ({"lang": "fr-CD"}, "invalid_locale", "lang"),
])
async def test_bad_parameters_are_422_problems(client, shop, params, code, field):
    headers, _, inv = shop
    r = await pdf(client, headers, inv["id"], **params)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == code and r.json()["field"] == field


async def test_another_tenant_gets_404(client, shop, new_tenant):
    _, _, inv = shop
    _, other = await new_tenant("Other SARL", "O0000009")
    assert (await pdf(client, other, inv["id"], layout="receipt")).status_code == 404
