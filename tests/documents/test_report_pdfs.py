"""Z, X and A report PDFs over HTTP: the tenant's language by default, ?lang= otherwise, local times,
groups by name, rates as percentages, credit notes negative."""
from __future__ import annotations

from stalela.i18n import localizer
from tests.documents.printing import needs_poppler, pdf_text
from tests.support.invoices import sample_invoice

pytestmark = needs_poppler


async def test_z_x_and_a_reports_in_the_readers_language(client, new_tenant):
    _, headers = await new_tenant("Rapports SARL", "R0000001")
    outlet = (await client.post("/v1/outlets", json={"code": "REP1", "name": "Limete"}, headers=headers)).json()
    inv = (await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)).json()
    note = await client.post("/v1/invoices", json={"outlet_id": outlet["id"], "type": "FA", "nature": "COR",
                                                   "original": inv["fiscal_number"],
                                                   "lines": [sample_invoice(outlet["id"])["lines"][1]]}, headers=headers)
    assert note.status_code == 201, note.text
    x = await client.get(f"/v1/outlets/{outlet['id']}/x-report", params={"format": "pdf"}, headers=headers)
    assert "Rapport X" in pdf_text(x.content)
    z = (await client.post(f"/v1/outlets/{outlet['id']}/z-reports", headers=headers)).json()

    text = pdf_text((await client.get(f"/v1/z-reports/{z['id']}", params={"format": "pdf"}, headers=headers)).content)
    signed = localizer("fr").datetime(z["issued_at"], "Africa/Kinshasa", seconds=True)
    for expected in (f"Rapport Z {z['number']}", "B · Taxable, taux normal · 16 %", "104 400,00", "-5 000,00",
                     "Facture de vente (FV)", "Facture d'avoir (FA)", signed):
        assert expected in text, expected
    assert "0.16" not in text and z["issued_at"] not in text

    es = await client.get(f"/v1/z-reports/{z['id']}", params={"format": "pdf", "lang": "es"}, headers=headers)
    assert "Reporte Z" in pdf_text(es.content) and "Factura de venta (FV)" in pdf_text(es.content)
    bad = await client.get(f"/v1/z-reports/{z['id']}", params={"format": "pdf", "lang": "de"}, headers=headers)
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_locale" and bad.json()["field"] == "lang"

    a = await client.get("/v1/a-reports", params={"from": z["business_day"], "to": z["business_day"], "format": "pdf",
                                                   "lang": "en"}, headers=headers)
    text = pdf_text(a.content)
    for expected in ("A report", inv["fiscal_number"], "Credit note (FA)", "-5,000.00", "B · Taxable, standard rate"):
        assert expected in text, expected
