"""The invoices page's "Draft from text": the draft, its confidence and questions, and "Approve & seal"."""
from __future__ import annotations


async def test_draft_from_text_then_approve_and_seal(owner, org):
    page = await owner.get("/app/invoices")
    assert 'action="/app/invoices/drafts"' in page.text
    r = await owner.post("/app/invoices/drafts", {"text": "Facture pour Kin Marché SARL NIF A1234567Z: 3 sacs de "
                                                          "ciment à 25000 FC", "locale": "fr"})
    assert r.status_code == 201, r.text[:500]
    assert 'data-testid="draft-confidence"' in r.text and 'data-testid="approve-seal"' in r.text
    action = r.text.split('action="/app/invoices/drafts/')[1].split('"')[0]
    sealed = await owner.post(f"/app/invoices/drafts/{action}")
    assert sealed.status_code == 303 and sealed.headers["location"].startswith("/app/invoices/inv_")
    again = await owner.get(f"/app/invoices/drafts/{action.split('/')[0]}")
    assert again.status_code == 200 and 'data-testid="approve-seal"' not in again.text


async def test_an_unsure_draft_shows_its_questions_and_no_seal_button(owner, org):
    await owner.get("/app/invoices")
    r = await owner.post("/app/invoices/drafts", {"text": "Facture 3 sacs de ciment"})
    assert r.status_code == 422 and 'data-testid="draft-questions"' in r.text
    assert 'data-testid="approve-seal"' not in r.text


async def test_the_page_shows_taxes_and_a_nul_character_is_a_form_error(owner, org):
    await owner.get("/app/invoices")
    r = await owner.post("/app/invoices/drafts", {"text": "Facture pour Kin Marché SARL NIF A1234567Z: 3 sacs de "
                                                          "ciment à 25000 FC", "locale": "fr"})
    assert r.status_code == 201 and 'data-testid="draft-taxes"' in r.text and 'data-testid="draft-total"' in r.text
    bad = await owner.post("/app/invoices/drafts", {"text": "a\x00b", "locale": "fr"})
    assert 400 <= bad.status_code < 500, bad.text[:300]
    assert "text" in bad.text
