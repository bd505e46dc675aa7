"""The buyer: a name and/or tax id read from the request, matched against the tenant's previous
buyers (rapidfuzz, so "Juan Perez" finds "Juan Pérez"), and shaped as the jurisdiction's buyer."""
from __future__ import annotations

import re
import unicodedata
from decimal import Decimal
from typing import Any

from rapidfuzz import fuzz, process, utils

from stalela.assistants.parser.context import AR, KnownBuyer, Refused, TenantContext
from stalela.assistants.parser.phrases import BuyerMention, TaxId

MATCH = 88  # WRatio at or above: the same buyer (accents and word order aside)
MARGIN = 6  # a second candidate this close makes the match ambiguous
_COMPANY_CUIT = ("30", "33", "34")


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    return utils.default_process("".join(c for c in text if not unicodedata.combining(c)))


_LEGAL_FORM = re.compile(r"\b(?:sarlu?|sas?|sprl|snc|srl|sau|scs|ltd|cia|cie|asbl|ong|s a s?|s r l)\b")


def _core(name: str) -> str:
    """A folded name without its legal form: "Bralima SARL" and "Bralima" are one company."""
    return re.sub(r"\s+", " ", _LEGAL_FORM.sub(" ", _fold(name))).strip()


def same_name(a: str, b: str) -> bool:
    """The two names are the same one, accents, case, word order and legal form aside; a part
    ("Juan") or a longer name ("Juan Pérez Gómez", "Juan Pérez Hijo") is not."""
    return fuzz.token_sort_ratio(_core(a), _core(b)) >= MATCH


def match_buyer(name: str, buyers: tuple[KnownBuyer, ...], whole: bool = False) -> tuple[KnownBuyer | None, bool]:
    """The known buyer ``name`` designates, and whether two known buyers fit it equally.

    Only the whole name designates a buyer (token order, accents and legal form aside): the review
    showed WRatio's partial matching turning "Juan Pérez Hijo" or "Juan" into Juan Pérez with his
    CUIT. An exact name wins over a near namesake ("Juan Pérez" when "Juana Pérez" is known too).
    A part fitting several buyers is reported ambiguous; a part fitting one is ``partial_match``'s
    (a question, never a silent match). ``whole`` is kept for the lower-case reader's callers."""
    query = _core(name)
    if not buyers or len(query) < 3:
        return None, False
    exact = [b for b in buyers if _fold(b.name) == _fold(name)]
    if len(exact) == 1:
        return exact[0], False
    choices = [_core(b.name) for b in buyers]
    scored = process.extract(query, choices, scorer=fuzz.token_sort_ratio, processor=None, limit=2)
    if scored and scored[0][1] >= MATCH:
        if len(scored) > 1 and scored[1][1] >= MATCH and scored[0][1] - scored[1][1] < MARGIN:
            return None, True
        return buyers[scored[0][2]], False
    if whole:
        return None, False
    partial = process.extract(query, choices, scorer=fuzz.WRatio, processor=None, limit=2)
    return None, len(partial) > 1 and partial[1][1] >= MATCH


def partial_match(name: str, buyers: tuple[KnownBuyer, ...]) -> KnownBuyer | None:
    """The one known buyer ``name`` is a part or an extension of ("Juan", "Juan Pérez Hijo")."""
    query = _core(name)
    if not buyers or len(query) < 3:
        return None
    scored = process.extract(query, [_core(b.name) for b in buyers], scorer=fuzz.WRatio, processor=None, limit=1)
    return buyers[scored[0][2]] if scored and scored[0][1] >= MATCH else None


def resolve_buyer(mention: BuyerMention | None, tax_id: TaxId | None, text: str, ctx: TenantContext,
                  ev: dict[str, Decimal], reasons: list[str], questions: list[str],
                  evidence: dict[str, Decimal]) -> dict[str, Any] | None:
    if mention is None and tax_id is None:
        ev["buyer"] = evidence["buyer.none"]
        return None
    known: KnownBuyer | None = None
    if tax_id is not None:
        known = next((b for b in ctx.buyers if b.tax_id == tax_id.value), None)
    if mention is not None:
        _refuse_two_buyers(mention.name, ctx.buyers)
        by_name, ambiguous = match_buyer(mention.name, ctx.buyers)
        if ambiguous and known is None:
            raise Refused("buyer_ambiguous", f"{mention.name!r} fits more than one known buyer")
        if known is not None and by_name is not None and by_name != known:
            raise Refused("buyer_conflict", f"{mention.name!r} is not the buyer whose tax id is {tax_id.value}")
        if known is not None and by_name is None and not same_name(mention.name, known.name):
            # "para Pedro Gómez CUIT <Juan Pérez's CUIT>": the name and the id disagree; the id
            # does not silently win.
            raise Refused("buyer_conflict", f"{mention.name!r} is not {known.name!r}, whose tax id is {tax_id.value}")
        if known is None and by_name is None:
            near = partial_match(mention.name, ctx.buyers)
            if near is not None:
                questions.append(f"buyer: is {mention.name!r} the known buyer {near.name!r} or another one?")
        known = known or by_name
        if known is not None and tax_id is not None and known.tax_id and known.tax_id != tax_id.value:
            raise Refused("buyer_conflict", f"{known.name!r} is known with another tax id")
    if known is not None:
        ev["buyer"] = evidence["buyer.registry_id" if tax_id is not None else "buyer.registry_name"]
        reasons.append(f"buyer: matched the known buyer {known.name!r}")
        name, number, condition = known.name, tax_id.value if tax_id else known.tax_id, known.vat_condition
    else:
        ev["buyer"] = evidence["buyer.new" if mention is not None else "buyer.id_only"]
        name = mention.name if mention else None
        number, condition = (tax_id.value if tax_id else None), None
    company = bool(mention and mention.company) or (number is not None and number[:2] in _COMPANY_CUIT)
    if ctx.jurisdiction == AR:
        return _argentine(name, number, tax_id.kind if tax_id else None, condition, company, text, reasons)
    buyer: dict[str, Any] = {"type": "PM" if company else "PP"}
    if name:
        buyer["name"] = name
    if number:
        buyer["tax_id"] = number
    if company and not number:
        questions.append("buyer.tax_id: the NIF of the company")
    return buyer


_JOIN = re.compile(r"\s+(?:y|et|&|e|o|ou|or|u)\s+|\s*/\s*")


def _refuse_two_buyers(name: str, buyers: tuple[KnownBuyer, ...]) -> None:
    """"Juan Pérez y María González": two buyers, one invoice. Refused when the parts are two known
    buyers or two full names; "Pérez y Asociados" (one word after the joiner) is one name."""
    parts = _JOIN.split(name)
    if len(parts) < 2:
        return
    known = {match_buyer(p, buyers)[0] for p in parts} - {None}
    if len(known) > 1 or all(len(p.split()) >= 2 for p in parts):
        raise Refused("two_buyers", f"{name!r} names more than one buyer")


_CONDITIONS = [
    ("responsable inscripto", "responsable_inscripto"), ("monotributista", "monotributo"),
    ("monotributo", "monotributo"), ("consumidor final", "consumidor_final"), ("exento de iva", "exento"),
    ("iva exento", "exento"), ("sujeto exento", "exento"),
]


def _argentine(name: str | None, number: str | None, kind: str | None, condition: str | None,
               company: bool, text: str, reasons: list[str]) -> dict[str, Any]:
    low = text.lower()
    stated = next((code for words, code in _CONDITIONS if words in low), None)
    if stated:
        condition = stated
    buyer: dict[str, Any] = {}
    if name:
        buyer["name"] = name
    if number is None:
        buyer.update(doc_type="CF", vat_condition="consumidor_final")
        return buyer
    if kind is None:
        kind = "CUIT" if len(number) == 11 else "DNI"
    buyer.update(doc_type=kind, doc_number=number)
    if condition is None:
        # A company's CUIT (30, 33, 34) is almost always a responsable inscripto; a person's is
        # read as a final consumer. Stated in the reasons so a reviewer sees the assumption.
        condition = "responsable_inscripto" if company and kind == "CUIT" else "consumidor_final"
        reasons.append(f"buyer: IVA condition assumed {condition}")
    buyer["vat_condition"] = condition
    return buyer
