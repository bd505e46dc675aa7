"""Z and X reports as files people open: a printable PDF page, a flat CSV, an XLSX workbook.

All three are views of the JSON report (``service.render_z`` / ``service.x_report``); the signed
facts stay in its ``seal``. The PDF page and its helpers are ``stalela.kit.pdf``'s.
"""
from __future__ import annotations

import csv
import io
import tempfile
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import segno

from stalela.fiscal.jurisdictions import labels
from stalela.i18n import Localizer, localizer
from stalela.kit.pdf import FONT, heading, output, report_document, small_print, table_row, totals_table

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
        if report.get("offline_count"):
            put("count sealed offline", report["offline_count"])
        if report.get("voided"):
            row += 1
            put("Voided numbers", "First", "Last", "Numbers", "Reason", "Record hash", fmt=bold)
            for v in report["voided"]:
                put(v["block_id"], v["fiscal_numbers"][0], v["fiscal_numbers"][1],
                    (v["last"] - v["first"] + 1) * (-1 if v["kind"] == "numbers_unvoided" else 1), v["reason"],
                    v["record_hash"])
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
        *((("Sealed offline", report["offline_count"]),) if report.get("offline_count") else ()),
        ("Signed at", report["issued_at"]),
        ("Currency", report["currency"]),
    ]
    if report.get("z_counter") is not None:
        facts.insert(0, ("Z number", f"{report['number']} (Z counter {report['z_counter']})"))
    if report.get("checkpoint"):
        cp = report["checkpoint"]
        facts.append(("Ledger checkpoint", f"tree size {cp['tree_size']}, root {cp['root_hash']}"))
    return facts


def _pdf_facts(report: dict[str, Any], context: dict[str, Any], l10n: Localizer) -> list[tuple[str, str]]:
    """``_facts`` for a reader: dates in the outlet's zone and the reader's language."""
    _ = l10n.gettext
    seller, outlet = context["seller"], context["outlet"]
    jurisdiction, tz = report.get("jurisdiction"), report.get("timezone")
    counters = "—" if report["first_counter"] is None else f"{report['first_counter']} … {report['last_counter']}"
    facts = [
        (_("Seller"), f"{seller['name']} ({labels.tax_id_label(jurisdiction)} {seller['tax_id']})"),
        (_("Outlet"), f"{outlet['name']} ({outlet['code']})" + (f", {outlet['address']}" if outlet.get("address") else "")),
        (_("Business day"), f"{l10n.date(report['business_day'], 'full')} ({tz})"),
        (_("First / last invoice"), f"{l10n.datetime(report['first_issued_at'], tz, seconds=True)} / "
                                    f"{l10n.datetime(report['last_issued_at'], tz, seconds=True)}"),
        # Argentina numbers each receipt type apart: a day is cut by the receipts' places in the
        # tenant's log (Merkle leaf index + 1), not by one counter (fiscal.invoices.figures.day_position).
        (_("Log positions") if jurisdiction == "AR" else _("Invoice counters"), counters),
        (_("Invoices"), l10n.number(report["counts"]["invoices"])),
        (_("Credit notes"), l10n.number(report["counts"]["credit_notes"])),
        *(((_("Of which sealed offline"), l10n.number(report["offline_count"])),) if report.get("offline_count")
          else ()),
        (_("Signed at"), l10n.datetime(report["issued_at"], tz, seconds=True)),
        (_("Currency"), report["currency"]),
    ]
    if report.get("z_counter") is not None:
        facts.insert(0, (_("Z number"), _("%(number)s (Z counter %(counter)s)", number=report["number"],
                                          counter=report["z_counter"])))
    if report.get("checkpoint"):
        cp = report["checkpoint"]
        facts.append((_("Ledger checkpoint"), _("tree size %(size)s, root %(root)s", size=cp["tree_size"],
                                                root=cp["root_hash"])))
    return facts


def _void_reason(l10n: Localizer, void: dict[str, Any]) -> str:
    _ = l10n.gettext
    if void.get("kind") == "numbers_unvoided":
        return _("reopened for late invoices")
    if void.get("reason") == "returned":
        return _("returned unused by the device")
    return _("not returned before the credential expired")


def report_pdf(report: dict[str, Any], context: dict[str, Any], lang: str | None = None) -> bytes:
    """A Z or X report as a page, in ``lang`` (default: the tenant's, ``context["lang"]``)."""
    l10n = localizer(lang or context.get("lang"))
    _ = l10n.gettext
    created = datetime.fromisoformat(report["issued_at"].replace("Z", "+00:00")) if report.get("issued_at") else None
    pdf = report_document(report.get("number") or "", l10n=l10n, created=created, format="A4")
    pdf.set_auto_page_break(True, margin=16)
    pdf.add_page()
    pdf.set_font(FONT, "B", 16)
    title = (_("Z report %(number)s", number=report["number"]) if report["object"] == "z_report"
             else _("X report (open day, not a close)"))
    pdf.cell(0, 9, title, new_x="LMARGIN", new_y="NEXT")
    qr_url = report.get("qr")
    if qr_url:
        image = io.BytesIO()
        segno.make(qr_url, error="m").save(image, kind="png", scale=6, border=1)
        image.seek(0)
        pdf.image(image, x=pdf.w - pdf.r_margin - 32, y=10, w=32)
    for label, value in _pdf_facts(report, context, l10n):
        pdf.set_font(FONT, "B", 8.5)
        pdf.cell(54, 5, label)
        pdf.set_font(FONT, "", 8.5)
        pdf.multi_cell(pdf.epw - 54 - (34 if qr_url and pdf.get_y() < 45 else 0), 5, value,
                       new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    jurisdiction = report.get("jurisdiction")
    ar = jurisdiction == "AR"
    settles = _settles(report)

    def money(value: Any, sign: int = 1) -> str:
        amount = None if value is None else Decimal(str(value))
        return l10n.money(sign * amount if amount else amount)

    def name(group: str, rate: Any) -> str:
        return labels.tax_group_text(l10n, jurisdiction, group, rate)

    totals_table(pdf, l10n, _("Totals per tax group (credit notes subtracted, debit notes added)") if ar
                 else _("Totals per tax group (credit notes subtracted)"), report["totals"], group_label=name,
                 money=money, settlement=settles)
    totals_table(pdf, l10n, _("Sales (invoices and debit notes)") if ar else _("Sales"), report["sales"],
                 compact=True, group_label=name, money=money, settlement=settles)
    # Subtracted from the day's totals: printed negative, as they count.
    totals_table(pdf, l10n, _("Credit notes"), report["credit_notes"], compact=True, group_label=name,
                 money=lambda v: money(v, -1), settlement=settles)
    if report["payments"]:
        heading(pdf, _("Payments (refunds subtracted)"))
        for p in report["payments"]:
            table_row(pdf, [(118, labels.payment_method_text(l10n, p["method"]), "L"), (62, money(p["amount"]), "R")])
    heading(pdf, _("Documents by type"))
    for t, n in report["counts"]["by_type"].items():
        table_row(pdf, [(118, labels.invoice_type_text(l10n, jurisdiction, t), "L"), (62, l10n.number(n), "R")])
    if not report["counts"]["by_type"]:
        table_row(pdf, [(118, _("none"), "L")])
    if report.get("voided"):
        # Offline numbers that will never carry an invoice, sealed as such (or reopened for late ones).
        heading(pdf, _("Voided numbers (offline devices)"))
        for v in report["voided"]:
            first, last = v["fiscal_numbers"]
            table_row(pdf, [(70, first if first == last else f"{first} … {last}", "L"),
                            (80, _void_reason(l10n, v), "L"), (30, l10n.number(v["last"] - v["first"] + 1), "R")])
    grand = report["grand_totals"]
    heading(pdf, _("Grand totals of the outlet (since its first invoice)"))
    for label, value in ((_("Net total"), money(grand["totals"]["total"])), (_("Sales"), money(grand["sales"]["total"])),
                         (_("Credit notes"), money(grand["credit_notes"]["total"], -1)),
                         (_("Invoices"), l10n.number(grand["counts"]["invoices"]))):
        table_row(pdf, [(118, label, "L"), (62, value, "R")])
    pdf.ln(2)
    lines = [_("Seal %(hash)s, key %(key)s (%(algorithm)s).", hash=report["seal"]["hash"],
               key=report["seal"]["key_id"], algorithm=report["seal"]["algorithm"])]
    if qr_url:
        lines.append(_("Check this report: %(url)s", url=qr_url))
    small_print(pdf, lines, size=7)
    return output(pdf)
