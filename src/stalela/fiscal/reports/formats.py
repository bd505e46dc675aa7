"""Z and X reports as files people open: a printable PDF page, a flat CSV, an XLSX workbook.

All three are views of the JSON report (``service.render_z`` / ``service.x_report``); the signed
facts stay in its ``seal``. The PDF page and its helpers are ``stalela.kit.pdf``'s.
"""
from __future__ import annotations

import csv
import io
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import segno

from stalela.fiscal.jurisdictions import labels
from stalela.kit.pdf import heading, latin1, report_document, table_row, totals_table

MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}
def xlsx_number(value: str | None) -> float | str | None:
    """Amounts as numbers while a double holds them exactly (15 significant digits), else as text."""
    if value is None:
        return None
    d = Decimal(value)
    return float(d) if len(d.as_tuple().digits) <= 15 else value


# ------------------------------------------------------------------------------------------ CSV


def flatten(value: Any, prefix: str = "", jurisdiction: str | None = None) -> Iterator[tuple[str, Any]]:
    """Dotted names for nested JSON; list items keyed by their group letter or payment method (an
    Argentine group by its label, "IVA 10,5 %": its rate code has a dot of its own)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from flatten(v, f"{prefix}.{k}" if prefix else k, jurisdiction)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            name = str(i)
            if isinstance(item, dict) and "group" in item:
                name = f"{item['group']}@{item['rate']}" if _rates_differ(value, item["group"]) else item["group"]
                if jurisdiction == "AR":
                    name = labels.group_label(jurisdiction, item["group"], item["rate"])
            elif isinstance(item, dict) and "method" in item:
                name = item["method"]
            yield from flatten(item, f"{prefix}.{name}", jurisdiction)
    else:
        yield prefix, value


def _rates_differ(items: list, group: str) -> bool:
    return len({i.get("rate") for i in items if isinstance(i, dict) and i.get("group") == group}) > 1


def report_csv(report: dict[str, Any]) -> bytes:
    """Two columns, ``field,value``: every figure of the report, then its seal."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(["field", "value"])
    for name, value in flatten({k: v for k, v in report.items() if k != "seal"}, "", report.get("jurisdiction")):
        out.writerow([name, "" if value is None else value])
    seal = report["seal"]
    for name in ("hash", "signature", "key_id", "algorithm"):
        out.writerow([f"seal.{name}", seal[name]])
    return buf.getvalue().encode()


# ----------------------------------------------------------------------------------------- XLSX


def _title(report: dict[str, Any]) -> str:
    if report["object"] == "z_report":
        return f"Z report {report['number']}"
    return "X report (open day, not a close)"


def report_xlsx(report: dict[str, Any], context: dict[str, Any]) -> bytes:
    with tempfile.TemporaryDirectory(prefix="stalela-xlsx-") as tmp:
        path = Path(tmp) / "report.xlsx"
        import xlsxwriter  # heavy (see report_document): loaded by the first XLSX export, not at start-up

        wb = xlsxwriter.Workbook(str(path), {"constant_memory": True, "tmpdir": tmp})
        ws = wb.add_worksheet("Report")
        bold = wb.add_format({"bold": True})
        money = wb.add_format({"num_format": "#,##0.00"})
        ws.set_column(0, 0, 28)
        ws.set_column(1, 5, 18)
        row = 0

        def put(*cells: Any, fmt: Any = None) -> None:
            nonlocal row
            for col, value in enumerate(cells):
                if isinstance(value, float):
                    ws.write_number(row, col, value, money)
                elif value is not None:
                    ws.write(row, col, value, fmt if col == 0 else None)
            row += 1

        put(_title(report), fmt=bold)
        for label, value in _facts(report, context):
            put(label, value)
        row += 1
        jurisdiction = report.get("jurisdiction")
        put("Group", "Rate", "Amount", "Base", "VAT", fmt=bold)
        for g in report["totals"]["groups"]:
            put(labels.group_label(jurisdiction, g["group"], g["rate"]), g["rate"], xlsx_number(g["amount"]),
                xlsx_number(g["base"]), xlsx_number(g["vat"]))
        for key in ("total", "vat_settled_by_credit", "payable") if _settles(report) else ("total",):
            put(key, xlsx_number(report["totals"][key]), fmt=bold)
        row += 1
        put("sales", xlsx_number(report["sales"]["total"]))
        put("credit_notes", xlsx_number(report["credit_notes"]["total"]))
        for t, n in report["counts"]["by_type"].items():
            put(f"count {labels.type_label(jurisdiction, t)}", n)
        for p in report["payments"]:
            put(f"payment {p['method']}", xlsx_number(p["amount"]))
        row += 1
        put("Grand totals", fmt=bold)
        grand = report["grand_totals"]
        put("grand_total", xlsx_number(grand["totals"]["total"]))
        put("grand_sales", xlsx_number(grand["sales"]["total"]))
        put("grand_credit_notes", xlsx_number(grand["credit_notes"]["total"]))
        put("grand_invoices", grand["counts"]["invoices"])
        row += 1
        put("seal.hash", report["seal"]["hash"])
        put("seal.key_id", report["seal"]["key_id"])
        wb.close()
        return path.read_bytes()


# ------------------------------------------------------------------------------------------ PDF


def _settles(report: dict[str, Any]) -> bool:
    """Whether the DRC's settlement rows (VAT settled by credit, payable) mean anything here."""
    return report.get("jurisdiction") != "AR"


def _facts(report: dict[str, Any], context: dict[str, Any]) -> list[tuple[str, Any]]:
    seller, outlet = context["seller"], context["outlet"]
    jurisdiction = report.get("jurisdiction")
    counters = "-" if report["first_counter"] is None else f"{report['first_counter']} .. {report['last_counter']}"
    facts = [
        ("Seller", f"{seller['name']} ({labels.tax_id_label(jurisdiction)} {seller['tax_id']})"),
        ("Outlet", f"{outlet['name']} ({outlet['code']})"
                   + (f", {outlet['address']}" if outlet.get("address") else "")),
        ("Business day", f"{report['business_day']} ({report['timezone']})"),
        ("First / last invoice", f"{report['first_issued_at'] or '-'} / {report['last_issued_at'] or '-'}"),
        # Argentina numbers each receipt type apart: a day is cut by the receipts' places in the
        # tenant's log (Merkle leaf index + 1), not by one counter (fiscal.invoices.figures.day_position).
        ("Log positions" if jurisdiction == "AR" else "Invoice counters", counters),
        ("Invoices", report["counts"]["invoices"]),
        ("Credit notes", report["counts"]["credit_notes"]),
        ("Signed at", report["issued_at"]),
        ("Currency", report["currency"]),
    ]
    if report.get("z_counter") is not None:
        facts.insert(0, ("Z number", f"{report['number']} (Z counter {report['z_counter']})"))
    if report.get("checkpoint"):
        cp = report["checkpoint"]
        facts.append(("Ledger checkpoint", f"tree size {cp['tree_size']}, root {cp['root_hash']}"))
    return facts


def report_pdf(report: dict[str, Any], context: dict[str, Any]) -> bytes:
    pdf = report_document(f"Stalela - seal {report['seal']['hash']}", format="A4")
    pdf.set_auto_page_break(True, margin=16)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 9, latin1(_title(report)), new_x="LMARGIN", new_y="NEXT")
    qr_url = report.get("qr")
    if qr_url:
        image = io.BytesIO()
        segno.make(qr_url, error="m").save(image, kind="png", scale=6, border=1)
        image.seek(0)
        pdf.image(image, x=pdf.w - pdf.r_margin - 32, y=10, w=32)
    pdf.set_font("Helvetica", "", 9)
    for label, value in _facts(report, context):
        pdf.set_font("Helvetica", "B", 9)
        pdf.cell(42, 5.5, latin1(label))
        pdf.set_font("Helvetica", "", 9)
        pdf.multi_cell(pdf.epw - 42 - (34 if qr_url and pdf.get_y() < 45 else 0), 5.5, latin1(value),
                       new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    jurisdiction = report.get("jurisdiction")
    ar = jurisdiction == "AR"
    name = None if not ar else (lambda group, rate: labels.group_label(jurisdiction, group, rate))
    settles = _settles(report)
    totals_table(pdf, "IVA por alicuota / VAT per rate (notas de credito restadas, debit notes added)" if ar
                 else "Totals per tax group (credit notes subtracted)", report["totals"], group_label=name,
                 settlement=settles)
    totals_table(pdf, "Sales (facturas and debit notes)" if ar else "Sales", report["sales"], compact=True,
                 settlement=settles)
    totals_table(pdf, "Credit notes", report["credit_notes"], compact=True, settlement=settles)
    if report["payments"]:
        heading(pdf, "Payments (refunds subtracted)")
        for p in report["payments"]:
            table_row(pdf, [(60, p["method"], "L"), (40, p["amount"], "R")])
    by_type = ", ".join(f"{labels.type_label(jurisdiction, t)}: {n}"
                        for t, n in report["counts"]["by_type"].items()) or "none"
    heading(pdf, "Documents by type")
    pdf.set_font("Helvetica", "", 9)
    pdf.multi_cell(0, 5, latin1(by_type), new_x="LMARGIN", new_y="NEXT")
    grand = report["grand_totals"]
    heading(pdf, "Grand totals of the outlet (since its first invoice)")
    for label, value in (("Net total", grand["totals"]["total"]), ("Sales", grand["sales"]["total"]),
                         ("Credit notes", grand["credit_notes"]["total"]), ("Invoices", grand["counts"]["invoices"])):
        table_row(pdf, [(60, label, "L"), (40, value, "R")])
    heading(pdf, "Seal")
    pdf.set_font("Courier", "", 7.5)
    for label in ("hash", "key_id", "algorithm"):
        pdf.multi_cell(0, 4, latin1(f"{label}: {report['seal'][label]}"), new_x="LMARGIN", new_y="NEXT")
    if qr_url:
        pdf.multi_cell(0, 4, latin1(f"verify: {qr_url}"), new_x="LMARGIN", new_y="NEXT")
    pdf.alias_nb_pages()
    return bytes(pdf.output())
