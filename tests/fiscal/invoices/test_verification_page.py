"""The public verification page (what a receipt's QR code opens) in the visitor's language, and what it
answers for an id Stalela does not know: a translated HTML page, never problem+json unless JSON is asked."""
from __future__ import annotations

import re

import pytest

from tests.support.invoices import sample_invoice

RETURN = [{"description": "Retour sac", "item_type": "BIE", "tax_group": "B", "quantity": "1", "unit_price": "1000"}]


@pytest.fixture
async def sold(client, new_tenant):
    """A DRC tenant (default language: French), a sale of 109 400 CDF and a credit note of 1 160 CDF on it."""
    _, headers = await new_tenant("Boutique Lisanga SARL", "A7654321Z")
    outlet = (await client.post("/v1/outlets", json={"code": "KIN1", "name": "Gombe"}, headers=headers)).json()
    sale = (await client.post("/v1/invoices", json=sample_invoice(
        outlet["id"], buyer={"type": "PM", "name": "Client Secret SA", "tax_id": "B999"}), headers=headers)).json()
    credit = (await client.post("/v1/invoices", json=sample_invoice(
        outlet["id"], type="FA", nature="COR", original=sale["fiscal_number"], lines=RETURN), headers=headers)).json()
    return sale, credit


def path_of(invoice) -> str:
    return "/" + invoice["qr"].split("://", 1)[1].split("/", 1)[1]


def text(html: str) -> str:
    """The page's visible words, on one line (tags dropped, spaces collapsed; U+202F and U+00A0 kept)."""
    return re.sub(r"[ \t\n]+", " ", re.sub(r"<[^>]+>", " ", html))


async def test_the_page_speaks_the_visitors_language(client, sold):
    sale, _ = sold
    url = path_of(sale)
    pages = {lang: await client.get(url, headers={"Accept-Language": header})
             for lang, header in (("fr", "fr-CD,fr;q=0.9"), ("es", "es-AR,es;q=0.9,en;q=0.5"), ("en", "en-GB"))}
    for lang, page in pages.items():
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), page.text
        assert f'<html lang="{lang}">' in page.text and page.headers["content-language"] == lang
        assert "default-src 'none'" in page.headers["content-security-policy"]
    fr, es, en = (text(pages[lang].text) for lang in ("fr", "es", "en"))
    assert "Facture authentique" in fr and "Comprobante auténtico" in es and "Authentic invoice" in en
    # Types and groups by name with their code, rates as percentages, money per locale (non-breaking grouping).
    assert "Facture de vente (FV)" in fr and "Sales invoice (FV)" in en
    assert "B · Taxable, taux normal · 16\u00a0%" in fr and "B · Taxable, standard rate · 16%" in en
    assert "B · Gravado, tasa general · 16\u00a0%" in es
    assert "109\u202f400,00\u00a0CDF" in fr and "CDF109,400.00" in en and "109.400,00\u00a0CDF" in es
    assert "Biens (BIE)" in fr and "Services (SER)" in fr and "Goods (BIE)" in en
    assert "Personne morale (PM)" in fr and "Company (PM)" in en
    assert "Sac de riz 25 kg" in en and "Client Secret SA" in en and "B999" not in pages["en"].text
    # The date in the outlet's zone (Kinshasa, UTC+1), the UTC instant on hover.
    assert re.search(r'<time datetime="[^"]+Z" title="[^"]+ UTC" data-testid="issued-at">', pages["fr"].text)
    # The language switch keeps the URL's tenant and names each language in its own.
    assert f'href="{url}&amp;lang=es"' in pages["fr"].text and ">Español</a>" in pages["fr"].text


async def test_lang_parameter_beats_the_browser_and_the_tenant_is_the_last_resort(client, sold):
    sale, _ = sold
    url = path_of(sale)
    asked = await client.get(url + "&lang=es", headers={"Accept-Language": "en"})
    assert '<html lang="es">' in asked.text and "Comprobante auténtico" in asked.text
    # No preference at all: the issuing tenant's language (a DRC tenant: French).
    bare = await client.get(url)
    assert '<html lang="fr">' in bare.text and "Facture authentique" in bare.text
    # An unknown language is ignored, not refused.
    odd = await client.get(url + "&lang=de", headers={"Accept-Language": "de-DE,en;q=0.5"})
    assert odd.status_code == 200 and '<html lang="en">' in odd.text


async def test_a_credit_note_is_negative_and_cites_its_original(client, sold):
    sale, credit = sold
    fr = await client.get(path_of(credit), headers={"Accept-Language": "fr"})
    en = await client.get(path_of(credit), headers={"Accept-Language": "en"})
    assert 'data-testid="total">-1\u202f160,00\u00a0CDF<' in fr.text and 'class="amount negative"' in fr.text
    assert 'data-testid="total">-CDF1,160.00<' in en.text
    assert "Facture d'origine" in fr.text and "Original invoice" in en.text
    assert f'data-testid="original">{sale["fiscal_number"]} · Correction (COR)<' in en.text
    assert "Credit note (FA)" in en.text
    # The JSON answer is the one the API always gave: the sealed (positive) figures.
    data = (await client.get(path_of(credit), headers={"Accept": "application/json"})).json()
    assert data["total"] == "1160.00" and data["type"] == "FA"


@pytest.mark.parametrize("header, lang, words", [
    ("fr-FR,fr;q=0.9", "fr", "Cette facture est inconnue de Stalela"),
    ("es-AR", "es", "Stalela no conoce este comprobante"),
    ("en-US", "en", "This invoice is not known to Stalela"),
])
async def test_unknown_malformed_or_forged_ids_get_an_html_page(client, sold, header, lang, words):
    sale, _ = sold
    forged = sale["id"][:-4] + "zzzz"
    for path in ("/verify/inv_nope", "/verify/" + "x" * 300, "/verify/%00", "/verify/bad$id",
                 f"/verify/{forged}?t={sale['tenant_id']}", f"/verify/{sale['id']}?t=ten_forged",
                 f"/verify/{sale['id']}?t=" + "t" * 2000):
        r = await client.get(path, headers={"Accept-Language": header, "Accept": "text/html,*/*;q=0.8"})
        assert r.status_code == 404, (path, r.status_code)
        assert r.headers["content-type"].startswith("text/html"), (path, r.text)
        assert f'<html lang="{lang}">' in r.text and words in r.text, (path, r.text)
    # The same without any Accept header (curl, a QR reader): still the page.
    assert (await client.get("/verify/inv_nope")).headers["content-type"].startswith("text/html")


async def test_json_clients_keep_the_problem_answers(client, sold):
    sale, _ = sold
    for path, code in (("/verify/inv_nope", "invoice_not_found"), (f"/verify/{sale['id']}?t=ten_forged", "not_found")):
        r = await client.get(path, headers={"Accept": "application/json"})
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json", r.text
        assert r.json()["code"] == code
    # The QR image is not a page: an unknown id stays a problem.
    svg = await client.get("/verify/inv_nope/qr.svg")
    assert svg.status_code == 404 and svg.json()["code"] == "invoice_not_found"
