"""A reports (JSON, CSV, XLSX, PDF, streamed) and the Z/X files: PDFs render, workbooks hold the totals."""
from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from datetime import date
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from PIL import Image

from stalela.auth.principal import Principal
from stalela.fiscal.reports import a_report
from stalela.tenancy.context import bind_tenant
from tests.fiscal.reports.conftest import close, seal

CREDIT = {"type": "FA", "nature": "COR", "lines": [
    {"description": "Retour – riz “spécial”", "item_type": "BIE", "tax_group": "B", "quantity": "1",
     "unit_price": "45000"}]}
needs_pdftoppm = pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm (poppler-utils) not installed")


def first_page_ink(pdf: bytes, tmp_path: Path) -> float:
    """Render page 1 with pdftoppm; the share of pixels that are not white."""
    (tmp_path / "doc.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", "-singlefile", str(tmp_path / "doc.pdf"),
                    str(tmp_path / "page")], check=True, capture_output=True)
    image = Image.open(tmp_path / "page.png").convert("L")
    dark = sum(image.histogram()[:200])
    return dark / (image.width * image.height)


@pytest.fixture
async def month(client, shop, clock):
    """Two outlets over two business days: a Z closed early on the 20th, a sale after it, a credit note."""
    tenant, headers, outlet = shop
    other = (await client.post("/v1/outlets", json={"code": "KIN2", "name": "Limete"}, headers=headers)).json()
    clock.set("2026-11-20T10:00:00+01:00")
    a = await seal(client, headers, outlet["id"], payments=[{"method": "ESPECES", "amount": "109400"}])
    b = await seal(client, headers, other["id"])
    clock.set("2026-11-20T17:00:00+01:00")
    z20 = await close(client, headers, outlet["id"])
    clock.set("2026-11-20T19:00:00+01:00")
    late = await seal(client, headers, outlet["id"])  # after the close: business day 21
    clock.set("2026-11-21T09:00:00+01:00")
    credit = await seal(client, headers, outlet["id"], original=a["fiscal_number"], **CREDIT)
    clock.set("2026-11-21T21:00:00+01:00")
    z21 = await close(client, headers, outlet["id"])
    return {"tenant": tenant, "headers": headers, "outlet": outlet, "other": other, "invoices": [a, b, late, credit],
            "z": [z20, z21]}


async def a_get(client, headers, **params):
    r = await client.get("/v1/a-reports", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r


async def test_a_report_json_days_are_the_z_days(client, month):
    headers, outlet = month["headers"], month["outlet"]
    params = {"from": "2026-11-20", "to": "2026-11-21", "outlet_id": outlet["id"]}
    body = (await a_get(client, headers, **params)).json()
    assert body["object"] == "a_report" and body["outlet"]["code"] == "KIN1"
    got = {(i["fiscal_number"], i["business_day"]) for i in body["invoices"]}
    a, _, late, credit = month["invoices"]
    assert got == {(a["fiscal_number"], "2026-11-20"), (late["fiscal_number"], "2026-11-21"),
                   (credit["fiscal_number"], "2026-11-21")}
    assert all(i["lines"] and i["seal_hash"] for i in body["invoices"])
    for day, z in zip(body["days"], month["z"]):
        assert day["business_day"] == z["business_day"]
        for key in ("counts", "totals", "sales", "credit_notes", "payments"):
            assert day[key] == z[key], key
    assert Decimal(body["totals"]["totals"]["total"]) == sum(Decimal(z["totals"]["total"]) for z in month["z"])

    # The whole tenant, one day: both outlets' sales of the 20th, not the late one.
    body = (await a_get(client, headers, **{"from": "2026-11-20", "to": "2026-11-20"})).json()
    assert body["outlet"] is None and len(body["invoices"]) == 2
    assert {i["outlet_code"] for i in body["invoices"]} == {"KIN1", "KIN2"}
    assert body["days"][0]["counts"]["invoices"] == 2


async def test_a_report_csv_and_xlsx_hold_every_line_and_the_totals(client, month, tmp_path):
    headers = month["headers"]
    params = {"from": "2026-11-20", "to": "2026-11-21"}
    j = (await a_get(client, headers, **params)).json()
    r = await a_get(client, headers, **params, format="csv")
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert sum(1 for x in rows if x["record"] == "invoice") == 4
    assert sum(1 for x in rows if x["record"] == "line") == sum(len(i["lines"]) for i in j["invoices"])
    total = next(x for x in rows if x["record"] == "total")
    assert total["total"] == j["totals"]["totals"]["total"] and int(total["invoices"]) == 4
    day_rows = {x["business_day"]: x["total"] for x in rows if x["record"] == "day"}
    assert day_rows == {d["business_day"]: d["totals"]["total"] for d in j["days"]}
    assert any("Retour – riz “spécial”" == x["description"] for x in rows)  # UTF-8, untouched

    r = await a_get(client, headers, **params, format="xlsx")
    (tmp_path / "a.xlsx").write_bytes(r.content)
    wb = openpyxl.load_workbook(tmp_path / "a.xlsx", read_only=True)
    assert wb.sheetnames == ["Invoices", "Lines", "Days", "Totals"]
    invoices = list(wb["Invoices"].iter_rows(min_row=2, values_only=True))
    assert len(invoices) == 4
    totals = {row[0]: row for row in wb["Totals"].iter_rows(min_row=2, values_only=True)}
    assert Decimal(str(totals["total"][5])) == Decimal(j["totals"]["totals"]["total"])
    for g in j["totals"]["totals"]["groups"]:
        assert Decimal(str(totals[g["group"]][4])) == Decimal(g["vat"])
    lines = list(wb["Lines"].iter_rows(min_row=2, values_only=True))
    assert len(lines) == sum(len(i["lines"]) for i in j["invoices"])


@needs_pdftoppm
async def test_a_report_pdf_renders(client, month, tmp_path):
    r = await a_get(client, month["headers"], **{"from": "2026-11-20", "to": "2026-11-21", "format": "pdf"})
    assert r.headers["content-type"] == "application/pdf" and r.content.startswith(b"%PDF")
    assert first_page_ink(r.content, tmp_path) > 0.003


@needs_pdftoppm
async def test_z_and_x_files(client, month, tmp_path, new_tenant, clock):
    headers, z = month["headers"], month["z"][1]
    pdf = await client.get(f"/v1/z-reports/{z['id']}", params={"format": "pdf"}, headers=headers)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert f'{z["number"]}.pdf' in pdf.headers["content-disposition"]
    assert first_page_ink(pdf.content, tmp_path) > 0.01

    xlsx = await client.get(f"/v1/z-reports/{z['id']}", params={"format": "xlsx"}, headers=headers)
    (tmp_path / "z.xlsx").write_bytes(xlsx.content)
    ws = openpyxl.load_workbook(tmp_path / "z.xlsx")["Report"]
    cells = {row[0]: row[1:] for row in ws.iter_rows(values_only=True) if row and row[0]}
    assert Decimal(str(cells["total"][0])) == Decimal(z["totals"]["total"])
    assert Decimal(str(cells["payable"][0])) == Decimal(z["totals"]["payable"])
    for g in z["totals"]["groups"]:
        assert [Decimal(str(v)) for v in cells[g["group"]][1:4]] == [Decimal(g[k]) for k in ("amount", "base", "vat")]
    assert cells["seal.hash"][0] == z["seal"]["hash"]

    text = (await client.get(f"/v1/z-reports/{z['id']}", params={"format": "csv"}, headers=headers)).text
    fields = dict(csv.reader(io.StringIO(text)))
    assert fields["totals.total"] == z["totals"]["total"] and fields["seal.hash"] == z["seal"]["hash"]
    assert fields["totals.groups.B.vat"] == next(g["vat"] for g in z["totals"]["groups"] if g["group"] == "B")

    x = await client.get(f"/v1/outlets/{month['other']['id']}/x-report", params={"format": "pdf"}, headers=headers)
    assert x.status_code == 200 and first_page_ink(x.content, tmp_path) > 0.01

    # Names in any script the bundled font covers print as written (tests/documents checks the text).
    _, h2 = await new_tenant("Ngɔ́mbɛ – “Société” 日本 Łódź", "U1234567Z")
    o2 = (await client.post("/v1/outlets", json={"code": "U1", "name": "Ŝtalo ĉe Kinŝaso"}, headers=h2)).json()
    await seal(client, h2, o2["id"], lines=[{"description": "Поставка ✓", "item_type": "SER", "tax_group": "B",
                                              "quantity": "1", "unit_price": "10"}])
    z2 = await close(client, h2, o2["id"])
    pdf = await client.get(f"/v1/z-reports/{z2['id']}", params={"format": "pdf"}, headers=h2)
    assert pdf.status_code == 200 and first_page_ink(pdf.content, tmp_path) > 0.01
    a = await client.get("/v1/a-reports", params={"from": z2["business_day"], "to": z2["business_day"],
                                                   "format": "pdf"}, headers=h2)
    assert a.status_code == 200 and first_page_ink(a.content, tmp_path) > 0.003


async def test_a_report_validation_and_restricted_keys(client, month, settings, db):
    headers, outlet, other = month["headers"], month["outlet"], month["other"]
    for params, code in (({"from": "2026-11-21", "to": "2026-11-20"}, "invalid_range"),
                         ({"from": "2025-01-01", "to": "2026-11-20"}, "range_too_long"),
                         ({"from": "2026-11-20", "to": "2026-11-20", "outlet_id": "out_nope"}, "outlet_not_found")):
        r = await client.get("/v1/a-reports", params=params, headers=headers)
        assert r.json()["code"] == code, r.text
    assert (await client.get("/v1/a-reports", params={"from": "2026-11-20", "to": "2026-11-20", "format": "doc"},
                             headers=headers)).status_code == 422
    r = await client.get("/v1/a-reports", params={"from": "x", "to": "2026-11-20"}, headers=headers)
    assert r.status_code == 422

    till = (await client.post("/v1/api-keys", json={"name": "till", "outlet_id": other["id"]}, headers=headers)).json()
    till_h = {"Authorization": f"Bearer {till['api_key']}"}
    body = (await a_get(client, till_h, **{"from": "2026-11-20", "to": "2026-11-21"})).json()
    assert body["outlet"]["id"] == other["id"] and {i["outlet_id"] for i in body["invoices"]} == {other["id"]}
    r = await client.get("/v1/a-reports", params={"from": "2026-11-20", "to": "2026-11-21", "outlet_id": outlet["id"]},
                         headers=till_h)
    assert r.status_code == 403

    capped = settings.model_copy(update={"report_pdf_max_invoices": 1})
    async with db.transaction(readonly=True) as s:
        await bind_tenant(s, month["tenant"]["id"])
        with pytest.raises(Exception) as err:
            await a_report.prepare(s, capped, Principal(kind="api_key", tenant_id=month["tenant"]["id"]),
                                   outlet_id=None, day_from=date(2026, 11, 20), day_to=date(2026, 11, 21), fmt="pdf")
        assert getattr(err.value, "code", None) == "a_report_too_large_for_pdf"


async def test_a_report_streams_page_by_page(month, db, settings, monkeypatch):
    """Pages of 2 invoices: the writer gets them as they come and the session never holds more."""
    monkeypatch.setattr("stalela.fiscal.reports.repository.PAGE", 2)
    tenant_id = month["tenant"]["id"]
    async with db.transaction(readonly=True) as s:
        await bind_tenant(s, tenant_id)
        report = await a_report.prepare(s, settings, Principal(kind="api_key", tenant_id=tenant_id), outlet_id=None,
                                        day_from=date(2026, 11, 20), day_to=date(2026, 11, 21), fmt="json")
        buffer = a_report.Chunks()
        chunks, held = [], []
        async for _ in a_report.run(s, report, a_report.make_writer("json", buffer)):
            chunks.append(buffer.take())
            held.append(sum(1 for obj in s.identity_map.values() if type(obj).__name__ == "Invoice"))
    assert sum(1 for c in chunks if b'"invoice_id"' in c) >= 2  # invoices left in more than one piece
    assert max(held) <= 2
    assert len(json.loads(b"".join(chunks))["invoices"]) == 4
