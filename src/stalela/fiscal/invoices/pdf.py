"""A sealed invoice as a PDF: what the merchant hands the customer or files, with the QR code that
opens the public verification page. Everything shown comes from the stored document and seal, so
the PDF says exactly what was signed; it is a rendering, not a fiscal document of its own."""
from __future__ import annotations

import io
from typing import Any

import segno

from stalela.kit.pdf import heading, latin1, report_document, table_row, totals_table


def invoice_pdf(invoice: dict[str, Any], seller: dict[str, Any], outlet: dict[str, Any]) -> bytes:
    pdf = report_document(f"Stalela - {invoice['fiscal_number']} - seal {invoice['seal']['hash']}", format="A4")
    pdf.set_auto_page_break(True, margin=16)
    pdf.add_page()
    image = io.BytesIO()
    segno.make(invoice["qr"], error="m").save(image, kind="png", scale=6, border=1)
    image.seek(0)
    pdf.image(image, x=pdf.w - pdf.r_margin - 32, y=10, w=32)
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(pdf.epw - 34, 9, latin1(f"Invoice {invoice['fiscal_number']} ({invoice['type']})"),
             new_x="LMARGIN", new_y="NEXT")
    facts = [
        ("Seller", f"{seller['name']} - tax id {seller['tax_id']}"),
        ("Outlet", f"{outlet['code']} - {outlet['name']}"),
        ("Issued", invoice["issued_at"]),
        ("Currency", invoice["currency"]),
    ]
    buyer = invoice.get("buyer")
    if buyer:
        facts.append(("Buyer", " - ".join(str(v) for v in (buyer.get("name"), buyer.get("tax_id"), buyer.get("type"))
                                         if v)))
    if invoice.get("original"):
        facts.append(("Corrects", f"{invoice['original']} ({invoice.get('nature')})"))
    if invoice.get("reference"):
        facts.append(("Reference", invoice["reference"]))
    for label, value in facts:
        pdf.set_font("Helvetica", "B", 9)
        pdf.cell(30, 5.5, latin1(label))
        pdf.set_font("Helvetica", "", 9)
        pdf.multi_cell(pdf.epw - 30 - (34 if pdf.get_y() < 45 else 0), 5.5, latin1(value),
                       new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    heading(pdf, "Lines")
    pdf.set_fill_color(235, 238, 243)
    widths = (76, 14, 14, 22, 30, 34)
    table_row(pdf, list(zip(widths, ("Description", "Item", "Group", "Quantity", "Unit price", "Amount"), "LLLRRR")),
              bold=True, fill=True)
    for line in invoice["lines"]:
        table_row(pdf, list(zip(widths, (line["description"][:48], line["item_type"], line["tax_group"],
                                         line["quantity"], line["unit_price"], line["amount"]), "LLLRRR")))
    totals_table(pdf, "Totals per tax group", invoice["totals"])
    if invoice.get("payments"):
        heading(pdf, "Payments")
        for p in invoice["payments"]:
            table_row(pdf, [(60, p["method"], "L"), (40, p["amount"], "R")])
    heading(pdf, "Seal (verify with the public key: GET /v1/keys/{key_id})")
    pdf.set_font("Courier", "", 7.5)
    seal = invoice["seal"]
    for label in ("hash", "key_id", "algorithm", "signature"):
        pdf.multi_cell(0, 4, latin1(f"{label}: {seal[label]}"), new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(0, 4, latin1(f"counter {seal['payload']['counter']}, previous seal {seal['payload']['prev_hash']}"),
                   new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(0, 4, latin1(f"verify: {invoice['qr']}"), new_x="LMARGIN", new_y="NEXT")
    pdf.alias_nb_pages()
    return bytes(pdf.output())
