"""A sealed invoice as a PDF: the document the merchant hands the customer or files, in two layouts
(an A4 page, an 80 mm thermal receipt) and three languages.

Everything shown comes from the stored document, its seal and the authority's acknowledgement, so the
PDF says exactly what was signed; it is a rendering, not a fiscal record of its own. Codes stay as the
law and the seal write them, each next to its name in the reader's language (``labels.*_text``).
A credit note is printed as one: titled so, its amounts negative, citing the invoice it corrects.

The jurisdiction's mandatory mentions (docs/documents.md): for the DRC the DGI's elements of a
standardised invoice once the e-MCF has confirmed it (code DEF/DGI, NIM, counters, the DGI's time
and QR), a "pending" notice before; for Argentina the CAE, its due date and ARCA's QR (RG 4892).
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Callable

import segno

from stalela.fiscal.jurisdictions import ar_data, get_jurisdiction, labels
from stalela.i18n import Localizer, localizer, tenant_language
from stalela.kit.pdf import FONT, LIGHT_FILL, heading, output, report_document, small_print, table_row

LAYOUTS = ("a4", "receipt")
RECEIPT_WIDTH = 80.0  # mm: the common thermal roll
_DISPLAY_CURRENCY = {"PES": "ARS"}
# mm: a first pass measures the content on a strip this long; 5 m (near PDF's largest page, 200 inches)
# holds about 1,000 lines: a till receipt never comes close.
_RECEIPT_DRAFT_HEIGHT = 5000.0


@dataclass
class Content:
    """What the document says, already in the reader's language; the layouts only place it."""

    title: str
    number: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    lines: list[dict[str, str]] = field(default_factory=list)
    groups: list[tuple[str, str, str, str]] = field(default_factory=list)  # name, amount, base, VAT
    totals: list[tuple[str, str, bool]] = field(default_factory=list)
    payments: list[tuple[str, str]] = field(default_factory=list)
    mentions_title: str = ""
    mentions: list[tuple[str, str]] = field(default_factory=list)
    notice: str = ""
    authority_qr: str | None = None
    verify_url: str = ""
    small_print: list[str] = field(default_factory=list)
    # Titled blocks of label and amount rows: Argentina's WSFEv1 totals and its Ley 27.743 block.
    extra: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)


def invoice_pdf(invoice: dict[str, Any], seller: dict[str, Any], outlet: dict[str, Any],
                sync: dict[str, Any] | None = None, *, lang: str | None = None, layout: str = "a4",
                logo: bytes | None = None) -> bytes:
    """``seller``: name, tax_id, jurisdiction, vat_condition (AR); ``outlet``: code, name, address,
    timezone; ``sync``: the invoice's authority view (``service.sync_view``, with the DGI's ``nim``,
    ``authority_time`` and ``authority_qr`` when known); ``logo``: PNG bytes (tenancy logos)."""
    # Without a language (a caller that knows no reader): the jurisdiction's own, as the tenant's default.
    l10n = localizer(lang or tenant_language(seller.get("locale"), _jurisdiction(invoice, seller)))
    content = _content(invoice, seller, outlet, sync or {}, l10n)
    # Dated by the invoice, not by the moment of rendering: the same invoice gives the same bytes (the
    # portability export's archive is reproducible, PDFs included).
    created = datetime.fromisoformat(invoice["issued_at"].replace("Z", "+00:00"))
    if layout == "receipt":
        # Height fitted to the content: draw once on a very long strip to measure, then for real.
        draft = _receipt(content, logo, l10n, created, _RECEIPT_DRAFT_HEIGHT)
        return output(_receipt(content, logo, l10n, created, draft.get_y() + 6))
    return output(_a4(content, logo, l10n, created))


# ------------------------------------------------------------------------------------ content


def _jurisdiction(invoice: dict[str, Any], seller: dict[str, Any]) -> str:
    return (invoice["seal"]["payload"].get("jurisdiction") or seller.get("jurisdiction")
            or (ar_data.CODE if invoice.get("ar") else "CD"))


def _content(invoice: dict[str, Any], seller: dict[str, Any], outlet: dict[str, Any], sync: dict[str, Any],
             l10n: Localizer) -> Content:
    _ = l10n.gettext
    jur = _jurisdiction(invoice, seller)
    ar = invoice.get("ar")
    credit = invoice["type"] in get_jurisdiction(jur).credit_note_types
    # ARCA writes the peso "PES"; readers (and Babel) know it by its ISO 4217 code.
    currency = _DISPLAY_CURRENCY.get(invoice["currency"], invoice["currency"])
    sign = Decimal(-1) if credit else Decimal(1)

    def money(value: Any) -> str:
        amount = None if value is None else Decimal(str(value))
        return l10n.money(sign * amount if amount else amount, currency)  # no "-0,00"

    tz = outlet.get("timezone")
    content = Content(title=labels.invoice_type_text(l10n, jur, invoice["type"]), number=invoice["fiscal_number"],
                      verify_url=invoice["qr"])
    tax_id = labels.tax_id_label(jur)
    seller_text = f"{seller['name']}\n{tax_id} {seller['tax_id']}"
    if ar and seller.get("vat_condition"):
        seller_text += f"\n{labels.vat_condition_text(seller['vat_condition'])}"
    content.facts.append((_("Seller"), seller_text))
    place = f"{outlet['name']} ({outlet['code']})"
    content.facts.append((_("Outlet"), place + (f"\n{outlet['address']}" if outlet.get("address") else "")))
    content.facts.append((_("Issued"), f"{l10n.datetime(invoice['issued_at'], tz, seconds=True)} "
                                       f"({l10n.zone_name(tz, invoice['issued_at'])})"))
    if ar:
        code = _("code %(code)s", code="%02d" % ar["cbte_tipo"])
        content.facts.append((_("Point of sale / number"),
                              f"{ar['point_of_sale']:05d} - {ar['number']:08d} ({code})"))
        if ar.get("service_from"):
            content.facts.append((_("Service period"), _("%(start)s to %(end)s, payment due %(due)s",
                                                         start=l10n.date(ar["service_from"]),
                                                         end=l10n.date(ar["service_to"]),
                                                         due=l10n.date(ar["payment_due"]))))
        if ar["currency"] != "PES":
            content.facts.append((_("Exchange rate"), f"{ar['currency']} {l10n.number(ar['exchange_rate'])}"))
    content.facts.append((_("Currency"), currency))
    buyer = invoice.get("buyer")
    if buyer:
        content.facts.append((_("Buyer"), _buyer_text(buyer, jur, l10n)))
    elif invoice.get("buyer_status") in ("restricted", "erased"):
        content.facts.append((_("Buyer"), _("withheld (personal data restricted or erased)")))
    if invoice.get("original"):
        cited = _("Corrects invoice %(number)s", number=invoice["original"])
        if invoice.get("nature"):
            cited += f" · {labels.nature_text(l10n, invoice['nature'])}"
        content.facts.append((_("Original invoice"), cited))
    if invoice.get("exchange"):
        ex = invoice["exchange"]
        content.facts.append((_("Equivalent"), " ".join(str(v) for v in ex.values() if v is not None)))
    if invoice.get("reference"):
        content.facts.append((_("Reference"), invoice["reference"]))

    for line in invoice["lines"]:
        if ar:
            detail = labels.tax_group_text(l10n, jur, line["vat_rate"]) if line.get("vat_rate") else ""
        else:
            detail = (f"{labels.item_type_text(l10n, line.get('item_type'))} · "
                      f"{labels.tax_group_text(l10n, jur, line['tax_group'])}")
        content.lines.append({"description": line["description"], "detail": detail,
                              "quantity": l10n.number(line["quantity"]),
                              "unit_price": l10n.money(line["unit_price"], currency),
                              "amount": money(line["amount"])})

    if ar:
        _ar_totals(content, ar, l10n, money)
    else:
        totals = invoice["totals"]
        content.groups = [(labels.tax_group_text(l10n, jur, g["group"], g["rate"]), money(g["amount"]),
                           money(g["base"]), money(g["vat"])) for g in totals["groups"]]
        content.totals = [(_("Total"), money(totals["total"]), True)]
        if Decimal(totals.get("vat_settled_by_credit") or 0):
            content.totals += [(_("VAT settled by credit"), money(totals["vat_settled_by_credit"]), False),
                               (_("Payable"), money(totals["payable"]), True)]
    for p in invoice.get("payments") or ():
        content.payments.append((labels.payment_method_text(l10n, p["method"]), money(p["amount"])))

    if ar:
        _ar_mentions(content, sync, l10n)
    else:
        _drc_mentions(content, sync, l10n, tz)
    seal = invoice["seal"]
    content.small_print = [
        _("Sealed by Stalela: counter %(counter)s, seal %(hash)s, key %(key)s (%(algorithm)s).",
          counter=seal["payload"]["counter"], hash=seal["hash"], key=seal["key_id"], algorithm=seal["algorithm"]),
        _("Previous seal %(hash)s.", hash=seal["payload"]["prev_hash"]),
    ]
    return content


def _buyer_text(buyer: dict[str, Any], jur: str, l10n: Localizer) -> str:
    parts = [buyer.get("name") or ""]
    if jur == ar_data.CODE:
        if buyer.get("doc_number"):
            parts.append(f"{buyer.get('doc_type')} {buyer['doc_number']}")
        if buyer.get("vat_condition"):
            parts.append(labels.vat_condition_text(buyer["vat_condition"]))
    else:
        if buyer.get("type"):
            parts.append(labels.buyer_type_text(l10n, buyer["type"]))
        if buyer.get("tax_id"):
            parts.append(f"{labels.tax_id_label(jur)} {buyer['tax_id']}")
        if buyer.get("exemption_ref"):
            parts.append(l10n.gettext("Exemption %(reference)s", reference=buyer["exemption_ref"]))
    return "\n".join(p for p in parts if p)


def _drc_mentions(content: Content, sync: dict[str, Any], l10n: Localizer, tz: str | None) -> None:
    """Décret n°23/10 and Arrêté n°033/2023: the elements the DGI's e-MCF gives a confirmed invoice."""
    _ = l10n.gettext
    content.mentions_title = _("Standardised invoice (DGI e-MCF)")
    if sync.get("status") == "acknowledged" and sync.get("authority_code"):
        content.mentions = [(_("DGI code (DEF)"), sync["authority_code"])]
        if sync.get("nim"):
            content.mentions.append((_("Control module (NIM)"), sync["nim"]))
        if sync.get("counters"):
            content.mentions.append((_("Counters (type / total)"), sync["counters"]))
        when = sync.get("authority_time") or sync.get("acknowledged_at")
        if when:
            content.mentions.append((_("Certified at"), l10n.datetime(when, tz, seconds=True)))
        content.authority_qr = sync.get("authority_qr")
    else:
        content.notice = _("Awaiting certification by the DGI's e-MCF: the DGI code and counters are printed "
                           "once it has confirmed this invoice.")


def _ar_mentions(content: Content, sync: dict[str, Any], l10n: Localizer) -> None:
    """RG 4291 (CAE) and RG 4892 (ARCA's QR) for an authorised receipt."""
    _ = l10n.gettext
    content.mentions_title = _("Electronic receipt authorised by ARCA")
    if sync.get("status") == "acknowledged" and sync.get("authority_code"):
        content.mentions = [("CAE", sync["authority_code"])]
        if sync.get("cae_due"):
            content.mentions.append((_("CAE due date"), l10n.date(sync["cae_due"])))
        content.authority_qr = sync.get("arca_qr_url")
    else:
        # Not a valid receipt until ARCA authorises it: say so on the document itself.
        content.notice = _("Not yet authorised by ARCA: this receipt has no CAE yet (%(status)s).",
                           status=sync.get("status", "pending"))


def _ar_totals(content: Content, ar: dict[str, Any], l10n: Localizer, money: Callable[[Any], str]) -> None:
    _ = l10n.gettext
    rows: list[tuple[str, str]] = [(_("Net taxed"), money(ar["imp_neto"])),
                                   (_("Not taxed"), money(ar["imp_tot_conc"])),
                                   (_("Exempt"), money(ar["imp_op_ex"]))]
    rates = {r.alic_iva_id: r.rate for r in ar_data.RATES.values() if r.alic_iva_id is not None}
    for iva in ar.get("iva") or []:
        rate = rates.get(iva["id"])
        name = f"IVA {l10n.percent(rate)}" if rate is not None else f"IVA ({iva['id']})"
        rows.append((_("%(vat)s on %(base)s", vat=name, base=money(iva["base_imp"])), money(iva["importe"])))
    rows.append((_("Other taxes"), money(ar["imp_trib"])))
    content.extra.append((_("Totals"), rows))
    content.totals = [(_("Total"), money(ar["imp_total"]), True)]
    if ar["letter"] == "B":
        # Ley 27.743 Título I, RG 5614: a B receipt tells the final consumer the IVA its price contains.
        content.extra.append(("Régimen de Transparencia Fiscal al Consumidor (Ley 27.743)", [
            ("IVA contenido", money(ar["imp_iva"])),
            ("Otros impuestos nacionales indirectos", money(ar["imp_trib"]))]))


# ------------------------------------------------------------------------------------ drawing


def _qr_png(text: str) -> io.BytesIO:
    image = io.BytesIO()
    segno.make(text, error="m").save(image, kind="png", scale=6, border=1)
    image.seek(0)
    return image


def _logo(pdf: Any, logo: bytes, x: float, y: float, max_w: float, max_h: float) -> float:
    """Draws the logo within max_w × max_h keeping its proportions; returns its height."""
    from PIL import Image  # with fpdf2 (see kit.pdf): only when a document is drawn

    with Image.open(io.BytesIO(logo)) as img:
        w, h = img.size
    scale = min(max_w / w, max_h / h)
    width = w * scale
    pdf.image(io.BytesIO(logo), x=x if x >= 0 else (pdf.w - width) / 2, y=y, w=width, h=h * scale)
    return h * scale


def _a4(content: Content, logo: bytes | None, l10n: Localizer, created: datetime) -> Any:
    _ = l10n.gettext
    pdf = report_document(content.number, l10n=l10n, created=created, format="A4")
    pdf.set_auto_page_break(True, margin=16)
    pdf.add_page()
    qr = 30.0
    pdf.image(_qr_png(content.verify_url), x=pdf.w - pdf.r_margin - qr, y=10, w=qr)
    top = 10.0
    if logo:
        top += _logo(pdf, logo, pdf.l_margin, 10, 50, 20) + 3
    pdf.set_y(top)
    text_w = pdf.epw - qr - 4
    pdf.set_font(FONT, "B", 15)
    pdf.multi_cell(text_w, 7, content.title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "B", 12)
    pdf.multi_cell(text_w, 6, content.number, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    for label, value in content.facts:
        width = text_w if pdf.get_y() < 10 + qr + 2 else pdf.epw
        pdf.set_font(FONT, "B", 8.5)
        # The label wraps in its column (French and Spanish labels run longer than English ones).
        top = pdf.get_y()
        label_lines = len(pdf.multi_cell(38, 4.6, label, dry_run=True, output="LINES")) or 1
        pdf.multi_cell(38, 4.6, label, new_x="RIGHT", new_y="TOP")
        pdf.set_font(FONT, "", 8.5)
        pdf.multi_cell(width - 38, 4.6, value, new_x="LMARGIN", new_y="NEXT")
        pdf.set_y(max(pdf.get_y(), top + label_lines * 4.6))
    pdf.set_y(max(pdf.get_y(), 10 + qr + 2))
    heading(pdf, _("Lines"))
    pdf.set_fill_color(*LIGHT_FILL)
    widths = (96, 18, 32, 34)
    heads = list(zip(widths, (_("Description"), _("Quantity"), _("Unit price"), _("Amount")), "LRRR"))
    table_row(pdf, heads, bold=True, fill=True, size=8)
    for line in content.lines:
        if pdf.will_page_break(9):
            pdf.add_page()
            table_row(pdf, heads, bold=True, fill=True, size=8)  # each page's lines under their headings
        table_row(pdf, list(zip(widths, (line["description"], line["quantity"], line["unit_price"], line["amount"]),
                                "LRRR")), size=8.5, height=4.6)
        if line["detail"]:
            pdf.set_font(FONT, "", 7)
            pdf.set_text_color(90)
            pdf.cell(widths[0], 3.6, line["detail"], new_x="LMARGIN", new_y="NEXT")
            pdf.set_text_color(0)
    if content.groups:
        heading(pdf, _("Totals per tax group"))
        widths = (86, 32, 32, 30)
        table_row(pdf, list(zip(widths, (_("Tax group"), _("Amount"), _("Base"), _("VAT")), "LRRR")), bold=True,
                  fill=True, size=8)
        for row in content.groups:
            table_row(pdf, list(zip(widths, row, "LRRR")), size=8, height=4.8)
    for title, rows in content.extra:
        heading(pdf, title)
        for label, amount in rows:
            table_row(pdf, [(118, label, "L"), (62, amount, "R")], size=8.5, height=4.8)
    pdf.ln(1)
    for label, amount, bold in content.totals:
        table_row(pdf, [(118, label, "L"), (62, amount, "R")], bold=bold, size=10 if bold else 9)
    if content.payments:
        heading(pdf, _("Payments"))
        for method, amount in content.payments:
            table_row(pdf, [(118, method, "L"), (62, amount, "R")], size=8.5, height=4.8)
    _a4_mentions(pdf, content, l10n)
    return pdf


def _a4_mentions(pdf: Any, content: Content, l10n: Localizer) -> None:
    _ = l10n.gettext
    qr = 28.0
    if pdf.will_page_break(qr + 24):
        pdf.add_page()
    heading(pdf, content.mentions_title)
    top = pdf.get_y()
    indent = 0.0
    if content.authority_qr:
        pdf.image(_qr_png(content.authority_qr), x=pdf.l_margin, y=top, w=qr)
        indent = qr + 4
    for label, value in content.mentions:
        pdf.set_x(pdf.l_margin + indent)
        pdf.set_font(FONT, "B", 8.5)
        pdf.cell(48, 4.8, label)
        pdf.set_font(FONT, "", 8.5)
        pdf.cell(0, 4.8, value, new_x="LMARGIN", new_y="NEXT")
    if content.notice:
        pdf.set_x(pdf.l_margin + indent)
        pdf.set_font(FONT, "B", 8.5)
        pdf.multi_cell(pdf.epw - indent, 4.6, content.notice, new_x="LMARGIN", new_y="NEXT")
    pdf.set_y(max(pdf.get_y(), top + (qr if content.authority_qr else 0)) + 3)
    pdf.set_font(FONT, "", 8)
    pdf.multi_cell(0, 4.2, _("Check that this invoice is authentic: scan the QR code at the top or open %(url)s",
                             url=content.verify_url), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1)
    small_print(pdf, content.small_print)


def _receipt(content: Content, logo: bytes | None, l10n: Localizer, created: datetime, height: float) -> Any:
    _ = l10n.gettext
    pdf = report_document("", l10n=l10n, created=created, format=(RECEIPT_WIDTH, height))
    pdf.page_label = ""  # one page, no footer: a till slip
    pdf.set_margins(4, 4, 4)
    pdf.set_auto_page_break(False)
    pdf.add_page()
    if logo:
        pdf.set_y(4 + _logo(pdf, logo, -1, 4, 40, 18) + 2)
    pdf.set_font(FONT, "B", 10)
    pdf.multi_cell(0, 5, content.title, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(0, 5, content.number, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1)
    for label, value in content.facts:
        pdf.set_font(FONT, "B", 7)
        pdf.multi_cell(0, 3.4, label, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FONT, "", 7)
        pdf.multi_cell(0, 3.4, value, new_x="LMARGIN", new_y="NEXT")
    _rule(pdf)
    for line in content.lines:
        pdf.set_font(FONT, "", 7.5)
        pdf.multi_cell(0, 3.6, line["description"], new_x="LMARGIN", new_y="NEXT")
        pdf.cell(pdf.epw * 0.55, 3.6, f"{line['quantity']} × {line['unit_price']}")
        pdf.cell(0, 3.6, line["amount"], align="R", new_x="LMARGIN", new_y="NEXT")
        if line["detail"]:
            pdf.set_font(FONT, "", 6)
            pdf.set_text_color(90)
            pdf.multi_cell(0, 3, line["detail"], new_x="LMARGIN", new_y="NEXT")
            pdf.set_text_color(0)
    _rule(pdf)
    pdf.set_font(FONT, "", 7)
    for name, _amount, base, vat in content.groups:
        pdf.set_font(FONT, "", 6.5)
        pdf.multi_cell(0, 3, name, new_x="LMARGIN", new_y="NEXT")
        _pair(pdf, _("Base %(base)s · VAT", base=base), vat, 6.5)
    for title, rows in content.extra:
        pdf.set_font(FONT, "B", 7)
        pdf.multi_cell(0, 3.4, title, new_x="LMARGIN", new_y="NEXT")
        for label, amount in rows:
            _pair(pdf, label, amount, 7)
    for label, amount, bold in content.totals:
        pdf.set_font(FONT, "B" if bold else "", 9 if bold else 7.5)
        pdf.cell(pdf.epw * 0.45, 5, label)
        pdf.cell(0, 5, amount, align="R", new_x="LMARGIN", new_y="NEXT")
    for method, amount in content.payments:
        _pair(pdf, method, amount, 7)
    _rule(pdf)
    pdf.set_font(FONT, "B", 7.5)
    pdf.multi_cell(0, 3.6, content.mentions_title, align="C", new_x="LMARGIN", new_y="NEXT")
    for label, value in content.mentions:
        pdf.set_font(FONT, "", 7)
        pdf.multi_cell(0, 3.4, f"{label}: {value}", align="C", new_x="LMARGIN", new_y="NEXT")
    if content.notice:
        pdf.set_font(FONT, "B", 7)
        pdf.multi_cell(0, 3.4, content.notice, align="C", new_x="LMARGIN", new_y="NEXT")
    qr = 30.0
    if content.authority_qr:
        pdf.image(_qr_png(content.authority_qr), x=(pdf.w - qr) / 2, y=pdf.get_y() + 1, w=qr)
        pdf.set_y(pdf.get_y() + qr + 2)
    _rule(pdf)
    pdf.set_font(FONT, "", 7)
    pdf.multi_cell(0, 3.4, _("Check that this receipt is authentic:"), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.image(_qr_png(content.verify_url), x=(pdf.w - qr) / 2, y=pdf.get_y() + 1, w=qr)
    pdf.set_y(pdf.get_y() + qr + 2)
    pdf.set_font(FONT, "", 6)
    pdf.multi_cell(0, 3, content.verify_url, align="C", new_x="LMARGIN", new_y="NEXT", wrapmode="CHAR")
    pdf.ln(1)
    small_print(pdf, content.small_print, size=5.5)
    return pdf


def _rule(pdf: Any) -> None:
    pdf.ln(1)
    pdf.set_draw_color(150)
    pdf.set_dash_pattern(dash=1, gap=1)
    pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
    pdf.set_dash_pattern()
    pdf.set_draw_color(0)
    pdf.ln(1.5)


def _pair(pdf: Any, label: str, amount: str, size: float) -> None:
    pdf.set_font(FONT, "", size)
    pdf.cell(pdf.epw * 0.6, 3.6, label)
    pdf.cell(0, 3.6, amount, align="R", new_x="LMARGIN", new_y="NEXT")

