"""Golden images: representative documents rendered from fixed sealed documents (fixed ids, times and
hashes: tests/documents/fixtures), rasterised with ``pdftoppm -r 50`` and compared with the committed
PNGs in tests/documents/golden/ within a small tolerance (anti-aliasing may differ between poppler
versions; a moved table, a missing line or a glyph drawn as a box does not pass).

After an intended change of a layout, regenerate them and look at every image before committing:
``STALELA_UPDATE_GOLDEN=1 .venv/bin/pytest -q -n 0 tests/documents/test_golden.py``.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageStat

from stalela.fiscal.invoices.pdf import invoice_pdf
from stalela.fiscal.reports.formats import report_pdf
from tests.documents.printing import needs_poppler, pdf_text, rasterise

HERE = Path(__file__).parent
GOLDEN = HERE / "golden"
UPDATE = os.environ.get("STALELA_UPDATE_GOLDEN") == "1"
# Mean difference per channel (0-255) over the page, and the share of pixels allowed to differ much.
MEAN_TOLERANCE = 1.5
CHANGED_SHARE = 0.01

CD_SELLER = {"name": "Shop SARL", "tax_id": "A7654321Z", "jurisdiction": "CD", "vat_condition": None}
CD_OUTLET = {"code": "SHOP1", "name": "Boutique Gombe", "address": "12 avenue du Commerce, Kinshasa",
             "timezone": "Africa/Kinshasa"}
AR_SELLER = {"name": "Kiosco SRL", "tax_id": "30712345671", "jurisdiction": "AR",
             "vat_condition": "responsable_inscripto"}
AR_OUTLET = {"code": "PV3", "name": "Caja 1", "address": "Av. Corrientes 1234, CABA",
             "timezone": "America/Argentina/Buenos_Aires"}
DGI_ACK = {"status": "acknowledged", "authority_code": "DEF1A2B3C4D5E6F7G8H9J0K1", "counters": "1/1",
           "nim": "NIM-CD-000123", "authority_time": "2026-12-07T10:41:29+01:00",
           "authority_qr": "RDCDEF01;NIM-CD-000123;DEF1A2B3C4D5E6F7G8H9J0K1;A7654321Z;20261207104129"}
ARCA_ACK = {"status": "acknowledged", "authority_code": "75123456789012", "cae_due": "2026-12-17",
            "arca_qr_url": "https://www.afip.gob.ar/fe/qr/?p=eyJ2ZXIiOjEsImZlY2hhIjoiMjAyNi0xMi0wNiJ9"}


def fixture(name: str) -> dict[str, Any]:
    return json.loads((HERE / "fixtures" / f"{name}.json").read_text())


def with_buyer(document: dict[str, Any], name: str) -> dict[str, Any]:
    return {**document, "buyer": {"type": "PP", "name": name, "tax_id": None, "exemption_ref": None}}


def _logo() -> bytes:
    import io

    image = Image.new("RGB", (240, 80), (20, 80, 160))
    for x in range(20, 220):
        for y in range(30, 50):
            image.putpixel((x, y), (250, 200, 40))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


DOCUMENTS = {
    "invoice_cd_a4_fr": lambda: invoice_pdf(fixture("drc_invoice"), CD_SELLER, CD_OUTLET, DGI_ACK, lang="fr",
                                            logo=_logo()),
    "receipt_cd_cyrillic_fr": lambda: invoice_pdf(with_buyer(fixture("drc_invoice"), "Иван Петрович Сидоров"),
                                                  CD_SELLER, CD_OUTLET, DGI_ACK, lang="fr", layout="receipt"),
    "receipt_cd_arabic_en": lambda: invoice_pdf(with_buyer(fixture("drc_invoice"), "محمد عبد الله الأحمد"),
                                                CD_SELLER, CD_OUTLET, {}, lang="en", layout="receipt"),
    "invoice_ar_cae_es": lambda: invoice_pdf(fixture("ar_receipt"), AR_SELLER, AR_OUTLET, ARCA_ACK, lang="es"),
    "credit_note_cd_fr": lambda: invoice_pdf(fixture("drc_credit_note"), CD_SELLER, CD_OUTLET, {}, lang="fr"),
    "z_report_cd_fr": lambda: report_pdf(fixture("drc_z_report"), {
        "seller": CD_SELLER, "outlet": CD_OUTLET, "lang": "fr"}),
}


def _difference(actual: Path, expected: Path) -> tuple[float, float]:
    a, e = Image.open(actual).convert("L"), Image.open(expected).convert("L")
    assert a.size == e.size, f"{actual.name}: page size {a.size} instead of {e.size}"
    diff = ImageChops.difference(a, e)
    changed = sum(diff.histogram()[32:]) / (diff.width * diff.height)
    return ImageStat.Stat(diff).mean[0], changed


@needs_poppler
@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_document_matches_its_golden_image(name, tmp_path):
    content = DOCUMENTS[name]()
    assert content == DOCUMENTS[name](), "the same document must give the same bytes"
    pages = rasterise(content, tmp_path / name)
    assert pages
    for i, page in enumerate(pages, 1):
        golden = GOLDEN / f"{name}-{i}.png"
        if UPDATE:
            GOLDEN.mkdir(exist_ok=True)
            golden.write_bytes(page.read_bytes())
            continue
        assert golden.exists(), f"no golden image {golden.name}: run with STALELA_UPDATE_GOLDEN=1 and review it"
        mean, changed = _difference(page, golden)
        assert mean <= MEAN_TOLERANCE and changed <= CHANGED_SHARE, (
            f"{name} page {i} differs from {golden.name}: mean {mean:.2f}, {changed:.2%} of pixels changed")
    if not UPDATE:
        assert len(pages) == len(list(GOLDEN.glob(f"{name}-*.png"))), "a page more or less than the golden"


@needs_poppler
def test_documents_say_what_a_reader_needs():
    texts = {name: pdf_text(make()) for name, make in DOCUMENTS.items()}
    for name, text in texts.items():
        # No character replaced by "?" (the URLs' own query strings aside, wrapped or not).
        assert "GET /v1/keys" not in text and "?" not in re.sub(r"\?[thp]\b", "", text), name
    a4 = texts["invoice_cd_a4_fr"]
    for expected in ("Facture de vente (FV)", "SHOP1-00000001", "NIF A7654321Z", "Personne morale (PM)",
                     "Biens (BIE)", "B · Taxable, taux normal · 16 %", "109 400,00", "Espèces (ESPECES)",
                     "7 déc. 2026, 10:41:27", "DEF1A2B3C4D5E6F7G8H9J0K1", "NIM-CD-000123", "1/1",
                     "https://stalela.example/verify/", "sig_01golden0key000000000000"):
        assert expected in a4, expected
    assert "Иван Петрович Сидоров" in texts["receipt_cd_cyrillic_fr"]
    # pdftotext gives Arabic back in logical order once shaped right to left.
    assert "محمد" in texts["receipt_cd_arabic_en"] and "Awaiting certification by the DGI" in texts[
        "receipt_cd_arabic_en"]
    assert "16%" in texts["receipt_cd_arabic_en"]
    ar = texts["invoice_ar_cae_es"]
    for expected in ("Factura B (6)", "CUIT 30712345671", "IVA Responsable Inscripto", "Consumidor Final",
                     "75123456789012", "17 dic 2026", "IVA contenido", "1.145,02", "IVA 21 %"):
        assert expected in ar, expected
    credit = texts["credit_note_cd_fr"]
    assert "Facture d'avoir (FA)" in credit and "SHOP1-00000001" in credit and "-5 000,00" in credit
    z = texts["z_report_cd_fr"]
    for expected in ("SHOP1-Z-000001", "B · Taxable, taux normal · 16 %", "104 400,00", "Espèces (ESPECES)",
                     "Facture de vente (FV)"):
        assert expected in z, expected
