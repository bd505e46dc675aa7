"""A sealed invoice as a PDF: what the merchant hands the customer or files, with the QR code that
opens the public verification page. Everything shown comes from the stored document and seal, so
the PDF says exactly what was signed; it is a rendering, not a fiscal document of its own."""
from __future__ import annotations

import io
from datetime import datetime
from typing import Any

import segno

from stalela.kit.pdf import heading, latin1, report_document, table_row, totals_table


def _qr(pdf: Any, text: str, x: float, y: float, w: float) -> None:
    image = io.BytesIO()
    segno.make(text, error="m").save(image, kind="png", scale=6, border=1)
    image.seek(0)
    pdf.image(image, x=x, y=y, w=w)


def invoice_pdf(invoice: dict[str, Any], seller: dict[str, Any], outlet: dict[str, Any],
                sync: dict[str, Any] | None = None) -> bytes:
    """``sync``: the invoice's authority view (``service.sync_view``); an authorised Argentine receipt
    prints its CAE and ARCA's QR (RG 4892) next to Stalela's verification QR."""
    pdf = report_document(f"Stalela - {invoice['fiscal_number']} - seal {invoice['seal']['hash']}", format="A4")
    # Dated by the invoice, not by the moment of rendering: the same invoice gives the same bytes (the
    # portability export's archive is reproducible, PDFs included).
    pdf.set_creation_date(datetime.fromisoformat(invoice["issued_at"].replace("Z", "+00:00")))
    pdf.set_auto_page_break(True, margin=16)
    pdf.add_page()
    _qr(pdf, invoice["qr"], pdf.w - pdf.r_margin - 32, 10, 32)
    ar, sync = invoice.get("ar"), sync or {}
    if ar is not None and sync.get("arca_qr_url"):
        _qr(pdf, sync["arca_qr_url"], pdf.w - pdf.r_margin - 66, 10, 32)
    pdf.set_font("Helvetica", "B", 16)
    title = (f"{AR_RECEIPT_NAMES.get(invoice['type'], 'Comprobante')} {invoice['fiscal_number']}" if ar
             else f"Invoice {invoice['fiscal_number']} ({invoice['type']})")
    pdf.cell(pdf.epw - (68 if ar else 34), 9, latin1(title), new_x="LMARGIN", new_y="NEXT")
    facts = [
        ("Seller", f"{seller['name']} - tax id {seller['tax_id']}"),
        ("Outlet", f"{outlet['code']} - {outlet['name']}"),
        ("Issued", invoice["issued_at"]),
        ("Currency", invoice["currency"]),
    ]
    buyer = invoice.get("buyer")
    if buyer:
        shown = ("name", "doc_type", "doc_number", "vat_condition") if ar else ("name", "tax_id", "type")
        facts.append(("Buyer", " - ".join(str(buyer[k]) for k in shown if buyer.get(k))))
    if ar:
        facts += _ar_facts(ar, sync)
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
    if ar:
        widths: tuple[float, ...] = (90, 14, 22, 30, 34)
        table_row(pdf, list(zip(widths, ("Description", "IVA %", "Quantity", "Unit price", "Amount"), "LLRRR")),
                  bold=True, fill=True)
        for line in invoice["lines"]:
            table_row(pdf, list(zip(widths, (line["description"][:56], line["vat_rate"], line["quantity"],
                                             line["unit_price"], line["amount"]), "LLRRR")))
        _ar_totals(pdf, ar)
    else:
        widths = (76, 14, 14, 22, 30, 34)
        table_row(pdf, list(zip(widths, ("Description", "Item", "Group", "Quantity", "Unit price", "Amount"),
                                "LLLRRR")), bold=True, fill=True)
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


AR_RECEIPT_NAMES = {
    "1": "Factura A", "2": "Nota de Débito A", "3": "Nota de Crédito A",
    "6": "Factura B", "7": "Nota de Débito B", "8": "Nota de Crédito B",
    "11": "Factura C", "12": "Nota de Débito C", "13": "Nota de Crédito C",
}


def _ar_facts(ar: dict[str, Any], sync: dict[str, Any]) -> list[tuple[str, str]]:
    facts = [("Pto. Vta / Nro", f"{ar['point_of_sale']:05d} - {ar['number']:08d} (Cod. {ar['cbte_tipo']:02d})"),
             ("Fecha", ar["date"])]
    if ar.get("service_from"):
        facts.append(("Servicio", f"{ar['service_from']} - {ar['service_to']}, vto. pago {ar['payment_due']}"))
    if ar["currency"] != "PES":
        facts.append(("Cotizacion", f"{ar['currency']} {ar['exchange_rate']}"))
    if sync.get("status") == "acknowledged":
        facts.append(("CAE", f"{sync['authority_code']} - Vto. CAE {sync.get('cae_due')}"))
    else:
        # Not a valid receipt until ARCA authorises it: say so on the document itself.
        facts.append(("CAE", f"not yet authorised by ARCA ({sync.get('status', 'pending')})"))
    return facts


def _ar_totals(pdf: Any, ar: dict[str, Any]) -> None:
    heading(pdf, "Totals (WSFEv1)")
    rows = [("Neto gravado", ar["imp_neto"]), ("No gravado", ar["imp_tot_conc"]), ("Exento", ar["imp_op_ex"])]
    rows += [(f"IVA (alicuota {iva['id']}) sobre {iva['base_imp']}", iva["importe"]) for iva in ar.get("iva") or []]
    rows += [("Otros tributos", ar["imp_trib"]), ("Total", ar["imp_total"])]
    for label, amount in rows:
        table_row(pdf, [(120, label, "L"), (40, amount, "R")], bold=label == "Total")
    if ar["letter"] == "B":
        # Ley 27.743 Título I, RG 5614: a B receipt tells the final consumer the IVA its price contains.
        heading(pdf, "Régimen de Transparencia Fiscal al Consumidor (Ley 27.743)")
        table_row(pdf, [(120, "IVA contenido", "L"), (40, ar["imp_iva"], "R")])
        table_row(pdf, [(120, "Otros impuestos nacionales indirectos", "L"), (40, ar["imp_trib"], "R")])
