"""Z and X reports list the offline numbers voided (or reopened) on their business day, by the rule
invoices follow: the local date of the sealing, or the next open day when the day was already closed.
Offline invoices are counted apart too (``offline_count``). JSON, CSV, XLSX and PDF (fr/es/en)."""
from __future__ import annotations

import csv
import io
import shutil
import subprocess
from datetime import datetime, timedelta

import openpyxl
import pytest

from stalela.fiscal.core.reports import Figures
from stalela.offline.tasks import void_due_blocks
from tests.fiscal.reports.conftest import close, seal
from tests.offline.void_fixtures import issue_block, return_statement


@pytest.fixture
def void_clock(clock, monkeypatch):
    # Voids are sealed (and their rows dated) at the clock's time, like invoices and closes.
    for module in ("stalela.offline.void_service", "stalela.fiscal.ledger.events"):
        monkeypatch.setattr(f"{module}.utcnow", clock)
    return clock


async def expire_and_void(db, settings, clock, tenant_id, outlet_id, size=3):
    issued = await issue_block(db, settings, tenant_id, outlet_id, size=size,
                               expires_at=clock() - timedelta(hours=30))
    assert await void_due_blocks(db, settings, clock()) >= 1
    return issued


async def test_voids_go_to_the_day_they_were_sealed_on_or_the_next_open_one(client, db, settings, shop, void_clock):
    tenant, headers, outlet = shop
    clock = void_clock
    await seal(client, headers, outlet["id"])
    a = await expire_and_void(db, settings, clock, tenant["id"], outlet["id"], size=3)
    clock.set("2026-11-20T13:00:00+01:00")
    b = await issue_block(db, settings, tenant["id"], outlet["id"], size=2)
    r = await client.post(f"/v1/offline/blocks/{b.block_id}/return", headers=headers,
                          json=return_statement(b, tenant["id"], first=b.first, prev_hash=b.anchor))
    assert r.status_code == 200, r.text
    # After local midnight, before the 20th is closed: this one is the 21st's.
    clock.set("2026-11-21T00:10:00+01:00")
    c = await expire_and_void(db, settings, clock, tenant["id"], outlet["id"], size=4)
    clock.set("2026-11-21T00:30:00+01:00")
    z20 = await close(client, headers, outlet["id"], "2026-11-20")
    assert [(v["block_id"], v["reason"], v["first"], v["last"]) for v in z20["voided"]] == [
        (a.block_id, "expired", a.first, a.last), (b.block_id, "returned", b.first, b.last)]
    assert z20["voided"][0]["fiscal_numbers"] == [f"KIN1-{a.first:08d}", f"KIN1-{a.last:08d}"]
    assert z20["voided"] == z20["seal"]["payload"]["voided"] and z20["offline_count"] == 0

    clock.set("2026-11-21T10:00:00+01:00")
    x21 = (await client.get(f"/v1/outlets/{outlet['id']}/x-report", headers=headers)).json()
    assert x21["business_day"] == "2026-11-21" and [v["block_id"] for v in x21["voided"]] == [c.block_id]
    await seal(client, headers, outlet["id"])
    clock.set("2026-11-21T12:00:00+01:00")
    z21 = await close(client, headers, outlet["id"])  # closed early: what follows is the 22nd's
    clock.set("2026-11-21T13:00:00+01:00")
    d = await expire_and_void(db, settings, clock, tenant["id"], outlet["id"], size=1)
    assert [v["block_id"] for v in z21["voided"]] == [c.block_id]
    x22 = (await client.get(f"/v1/outlets/{outlet['id']}/x-report", headers=headers)).json()
    assert x22["business_day"] == "2026-11-22"
    assert [(v["block_id"], v["fiscal_numbers"]) for v in x22["voided"]] == [
        (d.block_id, [f"KIN1-{d.first:08d}"] * 2)]


async def test_voided_numbers_in_csv_xlsx_and_pdf(client, db, settings, shop, void_clock, tmp_path):
    tenant, headers, outlet = shop
    await seal(client, headers, outlet["id"])
    a = await expire_and_void(db, settings, void_clock, tenant["id"], outlet["id"], size=5)
    z = await close(client, headers, outlet["id"])
    url = f"/v1/z-reports/{z['id']}"

    rows = dict(csv.reader(io.StringIO((await client.get(url, params={"format": "csv"}, headers=headers)).text)))
    assert rows["voided.0.block_id"] == a.block_id and rows["voided.0.reason"] == "expired"
    assert rows["voided.0.fiscal_numbers.1"] == f"KIN1-{a.last:08d}" and rows["offline_count"] == "0"

    (tmp_path / "z.xlsx").write_bytes((await client.get(url, params={"format": "xlsx"}, headers=headers)).content)
    cells = [c for row in openpyxl.load_workbook(tmp_path / "z.xlsx", read_only=True).active.iter_rows(values_only=True)
             for c in row if c is not None]
    assert "Voided numbers" in cells and a.block_id in cells and f"KIN1-{a.first:08d}" in cells

    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) not installed")
    for lang, heading, reason in (("en", "Voided numbers (offline devices)", "not returned before the credential"),
                                  ("fr", "Numéros annulés (appareils hors ligne)", "non restitués avant"),
                                  ("es", "Números anulados (dispositivos sin conexión)", "no devueltos antes")):
        pdf = await client.get(url, params={"format": "pdf", "lang": lang}, headers=headers)
        assert pdf.status_code == 200, pdf.text
        (tmp_path / f"z-{lang}.pdf").write_bytes(pdf.content)
        text = subprocess.run(["pdftotext", "-layout", str(tmp_path / f"z-{lang}.pdf"), "-"], capture_output=True,
                              text=True, check=True).stdout
        assert heading in text and reason in text and f"KIN1-{a.first:08d} … KIN1-{a.last:08d}" in text


def test_offline_invoices_are_counted_apart():
    totals = {"groups": [{"group": "B", "rate": "16", "amount": "116.00", "base": "100.00", "vat": "16.00"}],
              "total": "116.00", "vat_settled_by_credit": "0.00", "payable": "116.00"}
    day = Figures()
    day.add_invoice(type="FV", credit=False, totals=totals, payments=None, counter=1, issued_at="2026-11-20T10:00:00Z")
    day.add_invoice(type="FV", credit=False, totals=totals, payments=None, counter=2, issued_at="2026-11-20T11:00:00Z",
                    offline=True)
    out = day.as_json()
    assert out["offline_count"] == 1 and out["counts"]["invoices"] == 2 and out["totals"]["total"] == "232.00"
    assert Figures.from_store(day.to_store()) == day and Figures.from_json(out) == day
    assert day.merge(day).offline == 2
    legacy = {k: v for k, v in out.items() if k != "offline_count"}  # a Z sealed before offline sealing
    assert Figures.from_json(legacy).offline == 0
    assert "offline" not in Figures().to_store()
