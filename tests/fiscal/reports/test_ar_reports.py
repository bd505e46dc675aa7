"""Z, X and A reports of an Argentine point of sale: IVA per rate code, credit notes subtracted, debit
notes added, business days cut by log position (each receipt type has its own numbers), and the
report files read as Argentine ones ("IVA 21 %", CUIT, Factura B)."""
from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import openpyxl

from tests.fiscal.reports.conftest import close
from tests.fiscal.reports.test_cli import run
from tests.support.ar import BUYER_RI, a_day_of_receipts, ar_outlet, ar_tenant, receipt, seal, sum_of_ar_blocks


async def shop(client, clock):
    clock.set("2026-11-01T09:00:00-03:00")
    tenant, headers = await ar_tenant(client)
    outlet = await ar_outlet(client, headers)
    clock.set("2026-11-20T12:00:00-03:00")
    return tenant, headers, outlet


def groups(report) -> dict[str, tuple[str, str]]:
    return {g["group"]: (g["base"], g["vat"]) for g in report["totals"]["groups"]}


async def test_z_is_the_sum_of_the_sealed_ar_blocks(client, clock, settings, database_url):
    tenant, headers, outlet = await shop(client, clock)
    sealed = await a_day_of_receipts(client, headers, outlet["id"])
    expected = sum_of_ar_blocks(sealed)

    x = (await client.get(f"/v1/outlets/{outlet['id']}/x-report", headers=headers)).json()
    z = await close(client, headers, outlet["id"], "2026-11-20")
    assert z["jurisdiction"] == "AR" and z["currency"] == "PES"
    for report in (x, z):
        assert report["totals"]["total"] == expected["total"]
        assert str(sum(Decimal(g["vat"]) for g in report["totals"]["groups"])) == expected["iva"]
        assert groups(report) == {**{k: v for k, v in expected["per_rate"].items()}}, report["totals"]
    # Credit notes apart and subtracted; the debit note counts as a sale.
    assert z["counts"]["by_type"] == {"1": 1, "2": 1, "6": 2, "8": 1} and z["counts"]["credit_notes"] == 1
    assert z["credit_notes"]["total"] == sealed[3]["totals"]["total"]
    sales = sum(Decimal(s["totals"]["total"]) for s in sealed if s["type"] != "8")
    assert Decimal(z["sales"]["total"]) == sales
    # The day is cut by log positions: the receipts' places in the tenant's log, not one counter.
    assert z["first_counter"] == 1 and z["last_counter"] == len(sealed)

    # A rebuild from the stored receipts finds the same figures.
    r = await run(settings, database_url, "rebuild", "--tenant", tenant["id"], "--check", "--json")
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    rebuilt = json.loads(r.stdout)["outlets"][0]
    assert rebuilt["invoices"] == len(sealed) and rebuilt["z_mismatches"] == [] and rebuilt["repaired"] == []


async def test_days_after_an_early_close_and_the_a_report(client, clock, tmp_path):
    tenant, headers, outlet = await shop(client, clock)
    first = await a_day_of_receipts(client, headers, outlet["id"])
    z1 = await close(client, headers, outlet["id"], "2026-11-20")
    # Closed early: later receipts of any type (new series or not) go to the 21st.
    later = [await seal(client, headers, receipt(outlet["id"])),
             await seal(client, headers, receipt(outlet["id"], "1", buyer=BUYER_RI))]
    clock.set("2026-11-21T20:00:00-03:00")
    z2 = await close(client, headers, outlet["id"], "2026-11-21")
    assert z2["counts"]["invoices"] == 2 and z2["totals"]["total"] == sum_of_ar_blocks(later)["total"]
    assert z2["first_counter"] == len(first) + 1
    assert z2["grand_totals"]["totals"]["total"] == sum_of_ar_blocks(first + later)["total"]

    r = await client.get("/v1/a-reports", params={"from": "2026-11-20", "to": "2026-11-21",
                                                  "outlet_id": outlet["id"]}, headers=headers)
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["jurisdiction"] == "AR" and len(a["invoices"]) == len(first) + len(later)
    days = {d["business_day"]: d for d in a["days"]}
    for z in (z1, z2):
        day = {k: v for k, v in days[z["business_day"]].items() if k != "business_day"}
        mine = {k: z[k] for k in day}
        assert day == mine, (day, mine)
    assert a["invoices"][0]["lines"][0]["vat_rate"] == "21"

    r = await client.get("/v1/a-reports", params={"from": "2026-11-20", "to": "2026-11-21", "format": "csv"},
                         headers=headers)
    assert r.status_code == 200, r.text
    rows = list(csv.DictReader(io.StringIO(r.text)))
    lines = [row for row in rows if row["record"] == "line"]
    assert {row["tax_group"] for row in lines} >= {"21", "10.5", "27", "exento"}
    invoice_rows = [row for row in rows if row["record"] == "invoice" and row["type"] == "1"]
    assert invoice_rows[0]["buyer_tax_id"] == "CUIT 20267565393"
    assert [row["total"] for row in rows if row["record"] == "total"] == [
        sum_of_ar_blocks(first + later)["total"]]

    r = await client.get("/v1/a-reports", params={"from": "2026-11-20", "to": "2026-11-21", "format": "xlsx"},
                         headers=headers)
    assert r.status_code == 200
    (tmp_path / "a.xlsx").write_bytes(r.content)
    book = openpyxl.load_workbook(tmp_path / "a.xlsx")
    assert len(list(book["Lines"].iter_rows(min_row=2))) == sum(len(s["lines"]) for s in first + later)
    r = await client.get("/v1/a-reports", params={"from": "2026-11-20", "to": "2026-11-21", "format": "pdf"},
                         headers=headers)
    assert r.status_code == 200 and r.content.startswith(b"%PDF")


async def test_z_files_read_as_argentine(client, clock, tmp_path):
    _, headers, outlet = await shop(client, clock)
    await a_day_of_receipts(client, headers, outlet["id"])
    z = await close(client, headers, outlet["id"], "2026-11-20")
    r = await client.get(f"/v1/z-reports/{z['id']}", params={"format": "csv"}, headers=headers)
    assert r.status_code == 200
    fields = dict(row for row in csv.reader(io.StringIO(r.text)))
    assert fields["totals.groups.IVA 10,5 %.vat"] == groups(z)["10.5"][1]
    assert fields["totals.groups.IVA 21 %.base"] == groups(z)["21"][0]
    r = await client.get(f"/v1/z-reports/{z['id']}", params={"format": "xlsx"}, headers=headers)
    (tmp_path / "z.xlsx").write_bytes(r.content)
    cells = [c for row in openpyxl.load_workbook(tmp_path / "z.xlsx")["Report"].iter_rows(values_only=True)
             for c in row if c is not None]
    assert "IVA 27 %" in cells and "Exento" in cells and "count Factura B (6)" in cells
    assert "payable" not in cells  # the DRC's settlement rows mean nothing here
    assert any("CUIT 30712345671" in str(c) for c in cells)
    r = await client.get(f"/v1/z-reports/{z['id']}", params={"format": "pdf"}, headers=headers)
    assert r.status_code == 200 and r.content.startswith(b"%PDF")
    x = await client.get(f"/v1/outlets/{outlet['id']}/x-report", params={"format": "pdf"}, headers=headers)
    assert x.status_code == 200 and x.content.startswith(b"%PDF")
