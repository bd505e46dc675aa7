"""A PDF page the Stalela way, for every printable document (invoices, receipts, Z/X/A reports).

Fonts: DejaVu Sans, bundled in ``kit/fonts`` (Bitstream Vera licence, ``LICENSE-DejaVu.txt``), so a
name in Latin, Cyrillic, Greek or Arabic script prints as written with no system font at run time.
fpdf2 embeds only the glyphs a document uses (a subset), so a PDF stays a few tens of kilobytes.

Arabic and Hebrew need a shaping engine (joined letters, right to left): fpdf2 shapes through
HarfBuzz (``uharfbuzz``). Shaping costs about ten times more per cell than plain drawing, which an
A report of thousands of lines would feel, so a document shapes only the texts that need it (see
``_NEEDS_SHAPING``); the others are drawn as they are, which is the same for those scripts.

In the kit because the invoice PDF (fiscal.invoices) and the reports (fiscal.reports, above it)
both draw with these helpers.
"""
from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from stalela.i18n import Localizer

if TYPE_CHECKING:
    from fpdf import FPDF

FONT = "DejaVu"
FONTS_DIR = Path(__file__).parent / "fonts"
# Scripts whose letters join or run right to left: Hebrew, Arabic, Syriac, Thaana, NKo… and the
# Arabic presentation forms. Latin, Cyrillic and Greek draw the same without shaping.
_NEEDS_SHAPING = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]")
LIGHT_FILL = (235, 238, 243)


@cache
def _document_class() -> type[FPDF]:
    # fpdf2 pulls in fontTools and Pillow: about 0.2 s of imports that every API worker would pay at
    # start-up (the restart time after a crash, docs/operations.md) for a rarely used download.
    from fpdf import FPDF

    class Document(FPDF):
        footer_text = ""
        page_label = "%(page)s/%(pages)s"

        def _shape_for(self, text: Any) -> None:
            wanted = bool(text) and _NEEDS_SHAPING.search(str(text)) is not None
            if wanted != bool(self.text_shaping):
                self.set_text_shaping(wanted)

        def cell(self, w: Any = None, h: Any = None, text: Any = "", *args: Any, **kwargs: Any) -> Any:
            text = "" if text is None else str(text)
            self._shape_for(text)
            return super().cell(w, h, text, *args, **kwargs)

        def multi_cell(self, w: Any, h: Any = None, text: Any = "", *args: Any, **kwargs: Any) -> Any:
            text = "" if text is None else str(text)
            self._shape_for(text)
            if not args:
                kwargs.setdefault("align", "L")  # fpdf2 justifies by default: wide gaps in short paragraphs
            return super().multi_cell(w, h, text, *args, **kwargs)

        def footer(self) -> None:
            if not self.footer_text and self.page_label == "":
                return
            self.set_y(-12)
            self.set_font(FONT, "", 7)
            self.set_text_color(110)
            page = self.page_label % {"page": self.page_no(), "pages": "{nb}"}
            self.cell(0, 5, f"{self.footer_text} · {page}" if self.footer_text else page, align="C")
            self.set_text_color(0)

    return Document


def report_document(footer_text: str, *, l10n: Localizer | None = None, created: datetime | None = None,
                    **options: Any) -> FPDF:
    """A document with the bundled fonts, a footer (``footer_text`` and "page n/m" in ``l10n``'s
    language) and, when given, a fixed creation date: dated by its facts (an invoice's issue, a
    report's signature), the same document gives the same bytes (reproducible exports and tests)."""
    pdf = _document_class()(**options)
    pdf.add_font(FONT, "", str(FONTS_DIR / "DejaVuSans.ttf"))
    pdf.add_font(FONT, "B", str(FONTS_DIR / "DejaVuSans-Bold.ttf"))
    pdf.set_font(FONT, "", 9)
    pdf.footer_text = footer_text
    if l10n is not None:
        pdf.page_label = l10n.gettext("page %(page)s/%(pages)s", page="%(page)s", pages="%(pages)s")
        pdf.set_lang(l10n.lang)
    if created is not None:
        pdf.set_creation_date(created)
    pdf.alias_nb_pages()
    return pdf


def output(pdf: FPDF) -> bytes:
    return bytes(pdf.output())


def heading(pdf: FPDF, text: str, size: float = 10) -> None:
    pdf.ln(2)
    pdf.set_font(FONT, "B", size)
    pdf.cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 9)


def table_row(pdf: FPDF, cells: list[tuple[float, Any, str]], *, bold: bool = False, fill: bool = False,
              size: float = 9, height: float = 5.5) -> None:
    pdf.set_font(FONT, "B" if bold else "", size)
    # A text wider than its column (a long description, a long name, a long label in French) wraps
    # inside it and the row grows to its tallest cell, instead of being drawn over the next column.
    lines = [len(pdf.multi_cell(width, height, str(text), dry_run=True, output="LINES")) or 1
             for width, text, _ in cells]
    rows = max(lines, default=1)
    if rows == 1:
        for width, text, align in cells:
            pdf.cell(width, height, text, border="B" if bold else 0, align=align, fill=fill)
        pdf.ln(height)
        return
    if pdf.auto_page_break and pdf.get_y() + rows * height > pdf.page_break_trigger:
        pdf.add_page()  # a row is never split across pages
    x, y = pdf.get_x(), pdf.get_y()
    for width, text, align in cells:
        pdf.set_xy(x, y)
        pdf.multi_cell(width, height, str(text), border="B" if bold else 0, align=align, fill=fill,
                       new_x="RIGHT", new_y="TOP")
        x += width
    pdf.set_xy(pdf.l_margin, y + rows * height)


def small_print(pdf: FPDF, lines: list[str], size: float = 6.5) -> None:
    """Technical facts (a seal's hash, a key id) in small grey type, wrapped anywhere (a hash has no spaces)."""
    pdf.set_font(FONT, "", size)
    pdf.set_text_color(90)
    for line in lines:
        pdf.multi_cell(0, size * 0.5, line, new_x="LMARGIN", new_y="NEXT", wrapmode="CHAR")
    pdf.set_text_color(0)
    pdf.set_font(FONT, "", 9)


def totals_table(pdf: FPDF, l10n: Localizer, title: str, totals: dict[str, Any], *, compact: bool = False,
                 group_label: Callable[[str, Any], str], money: Callable[[Any], str], settlement: bool = True) -> None:
    """Totals per tax group then the total. ``group_label(group, rate)`` names a group with its rate
    ("B · Taxable, taux normal · 16 %", "IVA 21 %"); ``settlement``: the DRC's "VAT settled by credit"
    and "Payable" rows (always zero and the total where a jurisdiction has no such settlement);
    ``compact``: the total rows only."""
    heading(pdf, title)
    _ = l10n.gettext
    if not compact:
        pdf.set_fill_color(*LIGHT_FILL)
        widths = (86, 32, 32, 30)
        table_row(pdf, list(zip(widths, (_("Tax group"), _("Amount"), _("Base"), _("VAT")), "LRRR")), bold=True,
                  fill=True, size=8)
        for g in totals["groups"]:
            table_row(pdf, list(zip(widths, (group_label(g["group"], g["rate"]), money(g["amount"]), money(g["base"]),
                                             money(g["vat"])), "LRRR")), size=8)
    rows = ((_("Total"), "total"), (_("VAT settled by credit"), "vat_settled_by_credit"), (_("Payable"), "payable"))
    for label, key in rows if settlement else rows[:1]:
        table_row(pdf, [(118, label, "L"), (62, money(totals[key]), "R")], bold=key == "total" and not compact)
