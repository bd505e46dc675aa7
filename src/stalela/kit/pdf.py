"""A PDF page the Stalela way, for every printable document (Z/X/A reports, the invoice PDF).

fpdf2's core fonts only know Latin-1: ``latin1`` maps the common typographic characters and strips
accents from the rest, so a name in any script still prints (approximately) instead of failing. In
the kit because the invoice PDF (fiscal.invoices) and the reports (fiscal.reports, above it) both
draw with these helpers.
"""
from __future__ import annotations

import unicodedata
from functools import cache
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from fpdf import FPDF

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


def totals_table(pdf: FPDF, title: str, totals: dict[str, Any], *, compact: bool = False,
                 group_label: Callable[[str, str], str] | None = None, settlement: bool = True) -> None:
    """``group_label(group, rate)``: how a group is named (an Argentine rate code reads "IVA 21 %": one
    wider column then, without the bare rate); ``settlement``: the DRC's "VAT settled by credit" and
    "Payable" rows (always zero and the total where a jurisdiction has no such settlement)."""
    heading(pdf, title)
    if not compact:
        pdf.set_fill_color(235, 238, 243)
        if group_label is None:
            widths: tuple[float, ...] = (20, 20, 40, 40, 40)
            table_row(pdf, list(zip(widths, ("Group", "Rate", "Amount", "Base", "VAT"), "LRRRR")), bold=True,
                      fill=True)
            for g in totals["groups"]:
                table_row(pdf, list(zip(widths, (g["group"], g["rate"], g["amount"], g["base"], g["vat"]), "LRRRR")))
        else:
            widths = (40, 40, 40, 40)
            table_row(pdf, list(zip(widths, ("Group", "Amount", "Base", "VAT"), "LRRR")), bold=True, fill=True)
            for g in totals["groups"]:
                table_row(pdf, list(zip(widths, (group_label(g["group"], g["rate"]), g["amount"], g["base"],
                                                 g["vat"]), "LRRR")))
    rows = (("Total", "total"), ("VAT settled by credit", "vat_settled_by_credit"), ("Payable", "payable"))
    for label, key in rows if settlement else rows[:1]:
        table_row(pdf, [(80, label, "L"), (40, "", "R"), (40, totals[key], "R")], bold=key == "total" and not compact)
