"""Z and X reports as files people open: a printable PDF page, a flat CSV, an XLSX workbook.

All three are views of the JSON report (``service.render_z`` / ``service.x_report``); the signed
facts stay in its ``seal``. PDFs use fpdf2's core fonts, which only know Latin-1: ``latin1`` maps
the common typographic characters and strips accents from the rest, so a name in any script still
prints (approximately) instead of failing.
"""
from __future__ import annotations

import csv
import io
import tempfile
import unicodedata
from decimal import Decimal
from pathlib import Path
from functools import cache
from typing import TYPE_CHECKING, Any, Iterator

import segno

if TYPE_CHECKING:
    from fpdf import FPDF

MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}
_TYPOGRAPHY = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"',
    "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u2026": "...", "\u00a0": " ", "\u202f": " ", "\u2009": " ",
    "\u20ac": "EUR", "\u2122": "TM", "\u2022": "*", "\u2713": "v", "\u2714": "v", "\u2718": "x",
})


def latin1(text: Any) -> str:
    """``text`` in characters the PDF core fonts can draw (Latin-1); others approximated or '?'."""
    value = ("" if text is None else str(text)).translate(_TYPOGRAPHY)
    try:
        value.encode("latin-1")
        return value
    except UnicodeEncodeError:
        pass
    out = []
    for ch in value:
        if ord(ch) < 256:
            out.append(ch)
            continue
        base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        out.append(base if base and all(ord(c) < 256 for c in base) else "?")
    return "".join(out)


def xlsx_number(value: str | None) -> float | str | None:
    """Amounts as numbers while a double holds them exactly (15 significant digits), else as text."""
    if value is None:
        return None
    d = Decimal(value)
    return float(d) if len(d.as_tuple().digits) <= 15 else value


# ------------------------------------------------------------------------------------------ CSV


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Dotted names for nested JSON; list items keyed by their group letter or payment method."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from flatten(v, f"{prefix}.{k}" if prefix else k)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            name = str(i)
            if isinstance(item, dict) and "group" in item:
                name = f"{item['group']}@{item['rate']}" if _rates_differ(value, item["group"]) else item["group"]
            elif isinstance(item, dict) and "method" in item:
                name = item["method"]
            yield from flatten(item, f"{prefix}.{name}")
    else:
        yield prefix, value


def _rates_differ(items: list, group: str) -> bool:
    return len({i.get("rate") for i in items if isinstance(i, dict) and i.get("group") == group}) > 1


def report_csv(report: dict[str, Any]) -> bytes:
    """Two columns, ``field,value``: every figure of the report, then its seal."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(["field", "value"])
    for name, value in flatten({k: v for k, v in report.items() if k != "seal"}):
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
        put("Group", "Rate", "Amount", "Base", "VAT", fmt=bold)
        for g in report["totals"]["groups"]:
            put(g["group"], g["rate"], xlsx_number(g["amount"]), xlsx_number(g["base"]), xlsx_number(g["vat"]))
        for key in ("total", "vat_settled_by_credit", "payable"):
            put(key, xlsx_number(report["totals"][key]), fmt=bold)
        row += 1
        put("sales", xlsx_number(report["sales"]["total"]))
        put("credit_notes", xlsx_number(report["credit_notes"]["total"]))
        for t, n in report["counts"]["by_type"].items():
            put(f"count {t}", n)
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


def _facts(report: dict[str, Any], context: dict[str, Any]) -> list[tuple[str, Any]]:
    seller, outlet = context["seller"], context["outlet"]
    counters = "-" if report["first_counter"] is None else f"{report['first_counter']} .. {report['last_counter']}"
    facts = [
        ("Seller", f"{seller['name']} (NIF {seller['tax_id']})"),
        ("Outlet", f"{outlet['name']} ({outlet['code']})"
                   + (f", {outlet['address']}" if outlet.get("address") else "")),
        ("Business day", f"{report['business_day']} ({report['timezone']})"),
        ("First / last invoice", f"{report['first_issued_at'] or '-'} / {report['last_issued_at'] or '-'}"),
        ("Invoice counters", counters),
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


@cache
def _report_pdf_class() -> type[FPDF]:
    # fpdf2 pulls in fontTools and Pillow: about 0.2 s of imports that every API worker would pay at
    # start-up (the restart time after a crash, docs/operations.md) for a rarely used download.
    from fpdf import FPDF

    class ReportPdf(FPDF):
        footer_text = ""

        def footer(self) -> None:
            self.set_y(-12)
            self.set_font("Helvetica", "", 7)
            self.set_text_color(110)
            self.cell(0, 5, latin1(f"{self.footer_text}  -  page {self.page_no()}/{{nb}}"), align="C")
            self.set_text_color(0)

    return ReportPdf


def report_document(footer_text: str, **options: Any) -> FPDF:
    """A PDF page set up the Stalela way (core fonts, a footer with ``footer_text`` and page numbers)."""
    pdf = _report_pdf_class()(**options)
    pdf.footer_text = footer_text
    return pdf


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
    totals_table(pdf, "Totals per tax group (credit notes subtracted)", report["totals"])
    totals_table(pdf, "Sales", report["sales"], compact=True)
    totals_table(pdf, "Credit notes", report["credit_notes"], compact=True)
    if report["payments"]:
        heading(pdf, "Payments (refunds subtracted)")
        for p in report["payments"]:
            table_row(pdf, [(60, p["method"], "L"), (40, p["amount"], "R")])
    by_type = ", ".join(f"{t}: {n}" for t, n in report["counts"]["by_type"].items()) or "none"
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


def heading(pdf: FPDF, text: str) -> None:
    pdf.ln(2)
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(0, 6, latin1(text), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)


def table_row(pdf: FPDF, cells: list[tuple[float, Any, str]], *, bold: bool = False, fill: bool = False) -> None:
    pdf.set_font("Helvetica", "B" if bold else "", 9)
    for width, text, align in cells:
        pdf.cell(width, 5.5, latin1(text), border="B" if bold else 0, align=align, fill=fill)
    pdf.ln(5.5)


def totals_table(pdf: FPDF, title: str, totals: dict[str, Any], *, compact: bool = False) -> None:
    heading(pdf, title)
    widths = (20, 20, 40, 40, 40)
    if not compact:
        pdf.set_fill_color(235, 238, 243)
        table_row(pdf, list(zip(widths, ("Group", "Rate", "Amount", "Base", "VAT"), "LRRRR")), bold=True, fill=True)
        for g in totals["groups"]:
            table_row(pdf, list(zip(widths, (g["group"], g["rate"], g["amount"], g["base"], g["vat"]), "LRRRR")))
    for label, key in (("Total", "total"), ("VAT settled by credit", "vat_settled_by_credit"),
                       ("Payable", "payable")):
        table_row(pdf, [(80, label, "L"), (40, "", "R"), (40, totals[key], "R")], bold=key == "total" and not compact)
