"""How people read a jurisdiction's codes: receipt types and tax groups as words, for reports and consoles.

Pure and display-only: nothing signed depends on these strings. A code the tables do not know is shown
as it is (an old report, a future type), never refused.
"""
from __future__ import annotations

from typing import Any, Mapping

from stalela.fiscal.jurisdictions import ar_data
from stalela.fiscal.jurisdictions.drc import INVOICE_TYPES as DRC_TYPES


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
