"""The verification page on a phone: Chromium at 390 px against a real ``stalela serve``.

Nothing overflows sideways (the tables scroll inside themselves), the language links switch the page,
axe-core finds no WCAG A/AA violation, and a forged QR code shows the "not known" page. Screenshots go
to a temporary folder (``stalela-screenshots/verify-*.png``).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import httpx
import pytest

from tests.support.invoices import sample_invoice
from tests.support.server import start_server

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
OPERATOR = "verification-browser-operator"
SHOTS = Path(tempfile.gettempdir()) / "stalela-screenshots"

try:
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - the test extras install them
    sync_playwright = None

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(sync_playwright is None, reason="playwright / axe-playwright-python are not installed"),
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"{CHROMIUM} is absent: install Debian's chromium (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = start_server({"STALELA_OPERATOR_TOKEN": OPERATOR}, tmp_path_factory.mktemp("verify-browser"))
    yield live
    live.stop()


def _receipts(base: str) -> tuple[str, str]:
    """A sale with long lines and large amounts, and a credit note on it: their verification URLs."""
    with httpx.Client(base_url=base, timeout=30) as http:
        r = http.post("/v1/tenants", json={"name": "Établissements Mukendi & Fils SARL", "tax_id": "A1234567Z",
                                           "jurisdiction": "CD"}, headers={"Authorization": f"Bearer {OPERATOR}"})
        assert r.status_code == 201, r.text
        key = {"Authorization": f"Bearer {r.json()['api_key']}"}
        outlet = http.post("/v1/outlets", json={"code": "KIN1", "name": "Gombe, boulevard du 30 Juin"},
                           headers=key).json()
        body = sample_invoice(outlet["id"], buyer={"type": "PM", "name": "Société Minière du Katanga SA",
                                                   "tax_id": "B999"})
        body["lines"][0].update(description="Ciment gris Portland CPJ 42,5 — sacs de 50 kg, livrés sur chantier",
                                quantity="1250", unit_price="15712.23")
        sale = http.post("/v1/invoices", json=body, headers=key).json()
        credit = http.post("/v1/invoices", json=sample_invoice(
            outlet["id"], type="FA", nature="COR", original=sale["fiscal_number"],
            lines=[{"description": "Retour de 10 sacs", "item_type": "BIE", "tax_group": "B", "quantity": "10",
                    "unit_price": "15712.23"}]), headers=key).json()
    local = lambda invoice: base + "/" + invoice["qr"].split("://", 1)[1].split("/", 1)[1]  # noqa: E731
    return local(sale), local(credit)


def _fits(page) -> None:  # noqa: ANN001
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide at 390 px"


def _audit(page) -> list[str]:  # noqa: ANN001
    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21aa"]},
                                       "resultTypes": ["violations"]})
    return [f"{v['id']}: {v['help']}" for v in results.response["violations"]]


def test_the_verification_page_on_a_phone(server):
    sale, credit = _receipts(server.base_url)
    SHOTS.mkdir(parents=True, exist_ok=True)
    findings: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            phone = browser.new_context(viewport={"width": 390, "height": 844}, locale="fr-CD", is_mobile=True,
                                        device_scale_factor=2)
            page = phone.new_page()
            page.goto(sale)
            expect(page.get_by_test_id("verdict")).to_have_text("✔ Facture authentique")
            expect(page.locator("html")).to_have_attribute("lang", "fr")
            _fits(page)
            findings += _audit(page)
            page.screenshot(path=str(SHOTS / "verify-fr.png"), full_page=True)

            page.get_by_role("link", name="Español").click()
            expect(page.get_by_test_id("verdict")).to_have_text("✔ Comprobante auténtico")
            expect(page.locator("html")).to_have_attribute("lang", "es")
            _fits(page)

            page.goto(credit)
            expect(page.get_by_test_id("total")).to_have_text(  # 10 × 15 712,23 + 16 % VAT, negative
                "-182\u202f261,87\u00a0CDF")
            _fits(page)
            page.screenshot(path=str(SHOTS / "verify-credit-fr.png"), full_page=True)

            page.goto(sale.replace("/verify/inv_", "/verify/inv_forged"))
            expect(page.get_by_test_id("verdict")).to_have_text("✘ Cette facture est inconnue de Stalela")
            _fits(page)
            findings += _audit(page)
            page.screenshot(path=str(SHOTS / "verify-unknown-fr.png"), full_page=True)
        finally:
            browser.close()
    assert findings == [], findings
