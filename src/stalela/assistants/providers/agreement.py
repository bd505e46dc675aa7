"""From a model's extraction to a draft, and its confidence (docs/assistants.md, "LLM providers").

The extraction goes through the rule parser's own builders (``parser.draft.build_body``): the same invoice body
for the tenant's jurisdiction, the same hard checks (tax id check digits, plausible quantities and prices, the
jurisdiction's tax rates, a currency the tenant invoices in, the buyer against the known ones). The confidence is
never the model's: no evaluation set has measured the model, so its reading of a field is worth something only
where the rule parser, read on the same text, agrees. Pure: no I/O, no clock, no model."""
from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from rapidfuzz import fuzz, utils

from stalela.assistants.parser import PARSER_VERSION, Draft, TenantContext
from stalela.assistants.parser.buyers import same_name
from stalela.assistants.parser.context import Refused
from stalela.assistants.parser.draft import build_body, score
from stalela.assistants.parser.lines import Line, Price
from stalela.assistants.parser.phrases import BuyerMention, TaxMention, check_tax_id, is_company_name
from stalela.assistants.providers.extraction import Extraction

PROVIDER_VERSION = "llm-1.0.0"
# The evidence of a field only the model read, or read otherwise than the rules: a rule class never measured.
# Any such field puts the raw score below 0.5, the calibration table's lowest bin (0.17): refused.
UNCONFIRMED = Decimal("0.5")
AGREED = Decimal("1")
# Two readings of one item's description agree when one's words are (nearly) the other's: "consultoría" and
# "horas de consultoría" do; "ciment" and "sable" do not.
DESCRIPTION_MATCH = 90
_LINE_HEADER = ("lines", "buyer", "outlet_id")


@dataclass(frozen=True)
class Disagreement:
    field: str
    model: Any
    rules: Any

    def question(self) -> str:
        if self.rules is None:
            return f"{self.field}: read by the model only ({self.model!r}); is it right?"
        return f"{self.field}: the model read {self.model!r}, the rule parser {self.rules!r}; which is right?"


def to_draft(x: Extraction, text: str, ctx: TenantContext, rules: Draft, model_name: str) -> Draft:
    """The model's reading as a draft of the tenant's jurisdiction, with a confidence from the agreement with
    ``rules`` (the rule parser's draft of the same ``text``)."""
    reasons = [f"provider: {model_name}, checked against the rule parser {rules.parser_version}"]
    questions: list[str] = []
    scratch: dict[str, Decimal] = {}  # the builders' evidence: the rule classes did not read this, agreement does
    invoice: dict[str, Any] = {"outlet_id": ctx.outlet_id}
    try:
        invoice.update(_body(x, text, ctx, scratch, reasons, questions))
    except Refused as exc:
        reasons.append(f"refused: {exc.reason}")
        return Draft(invoice=invoice, confidence=Decimal("0"), field_confidences={}, reasons=reasons,
                     questions=questions, refusal=exc.code, raw_score=Decimal("0"), due_date=x.due_date,
                     language=rules.language, parser_version=f"{PROVIDER_VERSION}+{PARSER_VERSION}")
    compared, differ = compare(invoice, x.due_date, rules.invoice, rules.due_date)
    if rules.refusal is not None:
        # What stopped the rules stops the draft: a person answers it (a discount, two prices, a missing price).
        questions += [f"rule parser: {q}" for q in rules.questions] or [
            f"rule parser: refused ({rules.refusal}); check the model's reading"]
        reasons += [f"rules: {r}" for r in rules.reasons if r.startswith("refused")]
    questions += [d.question() for d in differ]
    if not questions and rules.refusal is None:
        # Full agreement: the draft is the rules' own, word for word. A description or a buyer's name agrees
        # when close (a word more, an accent less): the model's wording must not ride into the invoice on that
        # closeness, and the rules' penalties (a long description, a name in it) must stand.
        return replace(rules, reasons=[*reasons, f"confidence: all {len(compared)} fields agree with the rule "
                                       "parser; the draft is the rule parser's", *rules.reasons],
                       parser_version=f"{PROVIDER_VERSION}+{PARSER_VERSION}")
    ev = {f: UNCONFIRMED if f in {d.field for d in differ} else AGREED for f in compared}
    # The rules' evidence times the agreement's: all agreed, the rules' own calibrated confidence; one field
    # unconfirmed, below 0.5 (the calibration table's lowest bin).
    raw, confidence = score({"rules": rules.raw_score, **ev}, refused=False)
    reasons.append(f"confidence: {len(compared) - len(differ)} of {len(compared)} fields agree with the rule parser")
    return Draft(invoice=invoice, confidence=confidence, field_confidences=ev, reasons=reasons, questions=questions,
                 refusal="needs_answers" if questions else None, raw_score=raw, due_date=x.due_date,
                 language=rules.language, parser_version=f"{PROVIDER_VERSION}+{PARSER_VERSION}")


def _body(x: Extraction, text: str, ctx: TenantContext, ev: dict[str, Decimal], reasons: list[str],
          questions: list[str]) -> dict[str, Any]:
    tax_id = check_tax_id(x.buyer_tax_id, ctx.jurisdiction) if x.buyer_tax_id else None
    if tax_id is not None and not tax_id.valid:
        raise Refused(f"invalid_{tax_id.kind.lower()}", f"{tax_id.kind} {tax_id.value} is not valid")
    mention = None
    if x.buyer_name:
        mention = BuyerMention(x.buyer_name, x.buyer_is_company or is_company_name(x.buyer_name), (0, 0))
    lines = [Line(text=item.description, quantity=Decimal(item.quantity), quantity_rule="digits",
                  prices=[Price(Decimal(item.unit_price), x.currency, "unit", False)] if item.unit_price else [],
                  description=item.description, service=item.service, unit=(item.unit or "").lower())
             for item in x.lines]
    mode = None if x.prices_include_tax is None else "gross" if x.prices_include_tax else "net"
    tax = TaxMention(rate=x.tax_rate, exempt=x.tax_exempt, mode=mode)
    return build_body(lines, mention, tax_id, tax, x.due_date, text, ctx, ev, reasons, questions)


def compare(model: dict[str, Any], model_due: Any, rules: dict[str, Any],
            rules_due: Any) -> tuple[list[str], list[Disagreement]]:
    """The fields compared, and those the two readings disagree on (a field one reading lacks included)."""
    fields: list[str] = []
    differ: list[Disagreement] = []

    def check(field: str, a: Any, b: Any, same: bool) -> None:
        fields.append(field)
        if not same:
            differ.append(Disagreement(field, a, b))

    for key in sorted((set(model) | set(rules)) - set(_LINE_HEADER)):
        check(key, model.get(key), rules.get(key), model.get(key) == rules.get(key))
    check("due_date", _iso(model_due), _iso(rules_due), model_due == rules_due)
    check("buyer", model.get("buyer"), rules.get("buyer"), _same_buyer(model.get("buyer"), rules.get("buyer")))
    ours, theirs = model.get("lines", []), rules.get("lines") or []
    if len(ours) != len(theirs):
        check("lines", f"{len(ours)} items", f"{len(theirs)} items" if theirs else None, False)
        return fields, differ
    for i, (a, b) in enumerate(zip(ours, theirs)):
        for key in sorted(set(a) | set(b)):
            check(f"lines[{i}].{key}", a.get(key), b.get(key), _same_value(key, a.get(key), b.get(key)))
    return fields, differ


def _same_value(key: str, a: Any, b: Any) -> bool:
    if key == "description":
        return bool(a and b) and fuzz.token_set_ratio(a, b, processor=utils.default_process) >= DESCRIPTION_MATCH
    if key in ("quantity", "unit_price") and a is not None and b is not None:
        return Decimal(a) == Decimal(b)  # "3" and "3.0" are one quantity
    return a == b


def _same_buyer(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    if a is None or b is None:
        return a is b
    rest_a, rest_b = {k: v for k, v in a.items() if k != "name"}, {k: v for k, v in b.items() if k != "name"}
    if rest_a != rest_b or ("name" in a) != ("name" in b):
        return False
    return "name" not in a or same_name(a["name"], b["name"])


def _iso(day: Any) -> str | None:
    return day.isoformat() if day is not None else None
