"""How people read a jurisdiction's codes: receipt types and tax groups as words, for reports and consoles.

Pure and display-only: nothing signed depends on these strings. A code the tables do not know is shown
as it is (an old report, a future type), never refused.
"""
from __future__ import annotations

from typing import Any, Mapping

from stalela.fiscal.jurisdictions import ar_data
from stalela.fiscal.jurisdictions.drc import INVOICE_TYPES as DRC_TYPES
from stalela.fiscal.jurisdictions.drc import TAX_GROUPS as DRC_GROUPS
from stalela.i18n import NP_, Localizer


def type_name(jurisdiction: str | None, invoice_type: str) -> str:
    """"Factura B" for AR type "6", "Facture de vente" for the DRC's FV; the code itself otherwise."""
    if jurisdiction == ar_data.CODE:
        receipt = ar_data.RECEIPT_TYPES.get(invoice_type)
        return receipt.name if receipt else invoice_type
    return DRC_TYPES.get(invoice_type, invoice_type)


def type_label(jurisdiction: str | None, invoice_type: str) -> str:
    """The name and the code, "Factura B (6)"; the DRC's short codes are read as they are ("FV")."""
    if jurisdiction == ar_data.CODE:
        name = type_name(jurisdiction, invoice_type)
        return name if name == invoice_type else f"{name} ({invoice_type})"
    return invoice_type


def group_label(jurisdiction: str | None, group: str, rate: str | None = None) -> str:
    """An AR group is an IVA rate code: "IVA 21 %", "IVA 10,5 %", "Exento"; a DRC group is its letter."""
    if jurisdiction == ar_data.CODE:
        known = ar_data.RATES.get(group)
        return known.name.split(" (")[0] if known else group
    return group


def tax_id_label(jurisdiction: str | None) -> str:
    return "CUIT" if jurisdiction == ar_data.CODE else "NIF"


def buyer_id(buyer: Mapping[str, Any] | None) -> str | None:
    """The buyer's identifier as sealed: the DRC's tax_id, or an AR document number (none for a
    consumidor final without a document)."""
    if not buyer:
        return None
    if buyer.get("tax_id"):
        return buyer["tax_id"]
    if buyer.get("doc_type") and buyer.get("doc_type") != ar_data.CF_DOC:
        return f"{buyer['doc_type']} {buyer.get('doc_number')}"
    return None


def line_group(line: Mapping[str, Any]) -> str | None:
    """The group a sealed line counts in: the DRC's tax_group letter or the AR vat_rate code."""
    return line.get("tax_group") or line.get("vat_rate")


# --- in the reader's language ---------------------------------------------------------------------
# The codes stay what the law and the seal say (FV, BIE, PM, B); these are only how a reader is told
# what they mean, always with the code next to the name. English msgids, translated by the catalogs
# (locales/*/LC_MESSAGES/labels.po). Argentine receipt types keep their legal Spanish names in every
# language ("Factura B" is what the document is called).

_DRC_TYPE_NAMES = {
    "FV": NP_("invoice type", "Sales invoice"),
    "FT": NP_("invoice type", "Advance invoice"),
    "FA": NP_("invoice type", "Credit note"),
    "EV": NP_("invoice type", "Export sales invoice"),
    "ET": NP_("invoice type", "Export advance invoice"),
    "EA": NP_("invoice type", "Export credit note"),
}
_ITEM_TYPE_NAMES = {
    "BIE": NP_("item type", "Goods"),
    "SER": NP_("item type", "Services"),
    "TAX": NP_("item type", "Levy or tax"),
}
_BUYER_TYPE_NAMES = {
    "PP": NP_("buyer type", "Individual"),
    "PM": NP_("buyer type", "Company"),
    "PC": NP_("buyer type", "Sole trader"),
    "PL": NP_("buyer type", "Liberal profession"),
    "AO": NP_("buyer type", "Embassy or international organisation"),
}
_DRC_GROUP_NAMES = {
    "A": NP_("tax group", "Exempt"),
    "B": NP_("tax group", "Taxable, standard rate"),
    "C": NP_("tax group", "Taxable, reduced rate"),
    "D": NP_("tax group", "Special schemes (VAT borne by the State)"),
    "E": NP_("tax group", "Exports and similar operations"),
    "F": NP_("tax group", "Externally funded public contracts, 16%"),
    "G": NP_("tax group", "Externally funded public contracts, 8%"),
    "H": NP_("tax group", "Packaging deposits"),
    "I": NP_("tax group", "Guarantees and deposits"),
    "J": NP_("tax group", "Disbursements"),
    "K": NP_("tax group", "Sales by non-VAT-registered sellers"),
    "L": NP_("tax group", "Levies outside the VAT base"),
    "M": NP_("tax group", "Regulated-price sales (specific VAT)"),
    "N": NP_("tax group", "Specific VAT on group M sales"),
}
_PAYMENT_METHOD_NAMES = {
    "ESPECES": NP_("payment method", "Cash"),
    "VIREMENT": NP_("payment method", "Bank transfer"),
    "CARTEBANCAIRE": NP_("payment method", "Bank card"),
    "MOBILEMONEY": NP_("payment method", "Mobile money"),
    "CHEQUES": NP_("payment method", "Cheque"),
    "CREDIT": NP_("payment method", "On credit"),
    "AUTRE": NP_("payment method", "Other"),
}
_NATURE_NAMES = {
    "COR": NP_("credit note nature", "Correction"),
    "RAN": NP_("credit note nature", "RAN (meaning not stated in the public sources)"),
    "RAM": NP_("credit note nature", "RAM (meaning not stated in the public sources)"),
    "RRR": NP_("credit note nature", "Rebates, discounts and refunds"),
}
_AR_VAT_CONDITION_NAMES = {
    "responsable_inscripto": "IVA Responsable Inscripto", "exento": "IVA Sujeto Exento",
    "consumidor_final": "Consumidor Final", "monotributo": "Responsable Monotributo",
    "no_categorizado": "Sujeto No Categorizado", "proveedor_exterior": "Proveedor del Exterior",
    "cliente_exterior": "Cliente del Exterior", "iva_liberado": "IVA Liberado – Ley N° 19.640",
    "monotributista_social": "Monotributista Social", "no_alcanzado": "IVA No Alcanzado",
    "monotributo_trabajador_independiente": "Monotributo Trabajador Independiente Promovido",
}


def _named(l10n: Localizer, context: str, names: Mapping[str, str], code: str | None) -> str:
    if not code:
        return "—"
    name = names.get(code)
    return f"{l10n.pgettext(context, name)} ({code})" if name else code


def invoice_type_text(l10n: Localizer, jurisdiction: str | None, invoice_type: str) -> str:
    """"Facture de vente (FV)", "Sales invoice (FV)"; "Factura B (6)" for Argentina in every language."""
    if jurisdiction == ar_data.CODE:
        return type_label(jurisdiction, invoice_type)
    return _named(l10n, "invoice type", _DRC_TYPE_NAMES, invoice_type)


def item_type_text(l10n: Localizer, item_type: str | None) -> str:
    return _named(l10n, "item type", _ITEM_TYPE_NAMES, item_type)


def buyer_type_text(l10n: Localizer, buyer_type: str | None) -> str:
    return _named(l10n, "buyer type", _BUYER_TYPE_NAMES, buyer_type)


def payment_method_text(l10n: Localizer, method: str | None) -> str:
    return _named(l10n, "payment method", _PAYMENT_METHOD_NAMES, method)


def nature_text(l10n: Localizer, nature: str | None) -> str:
    return _named(l10n, "credit note nature", _NATURE_NAMES, nature)


def vat_condition_text(condition: str | None) -> str:
    """An Argentine buyer's IVA condition by its legal name (Spanish in every language, as ARCA's)."""
    return _AR_VAT_CONDITION_NAMES.get(condition or "", condition or "—")


def tax_group_text(l10n: Localizer, jurisdiction: str | None, group: str, rate: Any = None) -> str:
    """"B · Taxable, taux normal · 16 %" for the DRC; "IVA 21 %" for Argentina (its group is its rate)."""
    if jurisdiction == ar_data.CODE:
        known = ar_data.RATES.get(group)
        taxed = known is not None and known.kind == ar_data.TAXED
        return f"IVA {l10n.percent(known.rate)}" if taxed else group_label(jurisdiction, group)
    name = _DRC_GROUP_NAMES.get(group)
    if name is None:
        return group
    known_rate = rate if rate is not None else (DRC_GROUPS[group].rate if group in DRC_GROUPS else None)
    text = f"{group} · {l10n.pgettext('tax group', name)}"
    return f"{text} · {l10n.percent(known_rate)}" if known_rate not in (None, "") else text
