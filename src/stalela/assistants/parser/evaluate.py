"""The evaluation of the rule parser on its hand-written evaluation set (`evalset/cases.jsonl`).

    python -m stalela.assistants.parser.evaluate          # the figures (make eval-drafts)
    python -m stalela.assistants.parser.evaluate --fit    # refit calibration_table.py on the set
    python -m stalela.assistants.parser.evaluate --show   # also every wrong or wrongly refused case

A case is *correct* when the draft is accepted-shaped (not refused) and matches the expected draft
field by field: every line's quantity and unit price (as Decimal), its tax (group/item type or
IVA rate), a word of its description, the buyer's name and tax id, the currency, the due date and
the price mode. A must-refuse case is never correct: a draft for it is a wrong draft.

The calibration error is measured out of fold (two folds by case order: each half is scored with
the table fitted on the other half), so the figure is not the table grading itself.
"""
from __future__ import annotations

import argparse
import json
import math
import unicodedata
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from stalela.assistants.parser import calibration
from stalela.assistants.parser.context import ACCEPT_THRESHOLD, KnownBuyer, TenantContext
from stalela.assistants.parser.draft import parse_request

TODAY = date(2026, 12, 1)  # the evaluation set's "today": relative due dates are written against it
_ENGINE_HOME = {"CD": "CDF", "AR": "PES"}


@dataclass
class Outcome:
    case: dict[str, Any]
    raw: Decimal
    hard_refused: bool
    accepted: bool
    correct: bool
    why: str


def load_cases(name: str = "cases.jsonl") -> list[dict[str, Any]]:
    source = resources.files(__package__).joinpath("evalset", name).read_text(encoding="utf-8")
    return [json.loads(line) for line in source.splitlines() if line.strip() and not line.startswith("//")]


@lru_cache(maxsize=1)
def registries() -> dict[str, list[list[str | None]]]:
    """Named lists of a tenant's previous buyers, shared by the cases (evalset/registries.json)."""
    text = resources.files(__package__).joinpath("evalset/registries.json").read_text(encoding="utf-8")
    return json.loads(text)


def context_of(case: dict[str, Any]) -> TenantContext:
    ctx = case.get("ctx", {})
    rows = registries()[ctx["registry"]] if "registry" in ctx else ctx.get("buyers", ())
    buyers = tuple(KnownBuyer(*b) for b in rows)
    return TenantContext(case["jur"], date.fromisoformat(ctx.get("today", TODAY.isoformat())), buyers=buyers,
                         dollar=ctx.get("dollar"), ar_issuer=ctx.get("ar_issuer", "responsable_inscripto"))


def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))


def compare(invoice: dict[str, Any], due: date | None, expect: dict[str, Any], jurisdiction: str) -> str:
    """'' when the draft matches the expectation, else what differs first."""
    lines = invoice.get("lines", [])
    if len(lines) != len(expect["lines"]):
        return f"{len(lines)} lines, expected {len(expect['lines'])}"
    for i, (got, want) in enumerate(zip(lines, expect["lines"])):
        if got["unit_price"] is None or Decimal(got["quantity"]) != Decimal(want["q"]) \
                or Decimal(got["unit_price"]) != Decimal(want["p"]):
            return f"line {i}: {got['quantity']} x {got['unit_price']}, expected {want['q']} x {want['p']}"
        tax = f"{got.get('tax_group')}/{got.get('item_type')}" if jurisdiction == "CD" else got.get("vat_rate")
        if tax != want.get("tax", "B/BIE" if jurisdiction == "CD" else "21"):
            return f"line {i}: tax {tax}, expected {want.get('tax')}"
        if _fold(want["d"]) not in _fold(got["description"]):
            return f"line {i}: description {got['description']!r} lacks {want['d']!r}"
    buyer, want_buyer = invoice.get("buyer"), expect.get("buyer")
    if (buyer is None) != (want_buyer is None):
        return f"buyer {buyer}, expected {want_buyer}"
    if buyer is not None:
        if _fold(buyer.get("name") or "") != _fold(want_buyer.get("name") or ""):
            return f"buyer name {buyer.get('name')!r}, expected {want_buyer.get('name')!r}"
        if (buyer.get("tax_id") or buyer.get("doc_number")) != want_buyer.get("id"):
            return f"buyer id {buyer.get('tax_id') or buyer.get('doc_number')}, expected {want_buyer.get('id')}"
    if invoice.get("currency", _ENGINE_HOME[jurisdiction]) != expect.get("cur", _ENGINE_HOME[jurisdiction]):
        return f"currency {invoice.get('currency')}, expected {expect.get('cur')}"
    if (due.isoformat() if due else None) != expect.get("due"):
        return f"due {due}, expected {expect.get('due')}"
    mode = {"ht": "net", "ttc": "gross"}.get(invoice.get("price_mode"), invoice.get("price_mode"))
    if mode != expect.get("mode"):
        return f"price mode {mode}, expected {expect.get('mode')}"
    if "type" in expect and invoice.get("type") != expect["type"]:
        return f"type {invoice.get('type')}, expected {expect['type']}"
    return ""


def run(cases: list[dict[str, Any]], bins: tuple[Decimal, ...] | None = None) -> list[Outcome]:
    outcomes = []
    for case in cases:
        draft = parse_request(case["text"], context_of(case), case.get("locale"))
        hard = draft.refusal is not None
        if "refuse" in case:
            correct, why = False, "" if hard else "must refuse"
        elif hard:
            correct, why = False, f"refused: {draft.refusal} {draft.reasons[-1:]}{draft.questions}"
        else:
            why = compare(draft.invoice, draft.due_date, case["expect"], case["jur"])
            correct = not why
        confidence = Decimal(0) if hard else calibration.calibrate(draft.raw_score, bins)
        outcomes.append(Outcome(case, draft.raw_score, hard, not hard and confidence >= ACCEPT_THRESHOLD,
                                correct, why))
    return outcomes


def wilson_lower(successes: int, n: int, z: float = 1.96) -> float:
    if n == 0:
        return 0.0
    p = successes / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - margin) / (1 + z * z / n)


def expected_calibration_error(pairs: list[tuple[Decimal, bool]], buckets: int = 10) -> float:
    total = len(pairs)
    error = 0.0
    for b in range(buckets):
        low, high = b / buckets, (b + 1) / buckets
        inside = [(float(c), ok) for c, ok in pairs if low <= float(c) < high or (b == buckets - 1 and float(c) == 1.0)]
        if inside:
            confidence = sum(c for c, _ in inside) / len(inside)
            accuracy = sum(ok for _, ok in inside) / len(inside)
            error += len(inside) / total * abs(confidence - accuracy)
    return error


def out_of_fold_ece(cases: list[dict[str, Any]]) -> float:
    folds = [cases[0::2], cases[1::2]]
    pairs: list[tuple[Decimal, bool]] = []
    for i, fold in enumerate(folds):
        other = run(folds[1 - i], bins=tuple(Decimal("0.5") for _ in range(len(calibration.EDGES) - 1)))
        table = tuple(Decimal(v) for v in calibration.fit([(o.raw, o.correct) for o in other if not o.hard_refused]))
        for outcome in run(fold, bins=table):
            confidence = Decimal(0) if outcome.hard_refused else calibration.calibrate(outcome.raw, table)
            pairs.append((confidence, outcome.correct))
    return expected_calibration_error(pairs)


@dataclass
class Figures:
    cases: int
    must_refuse: int
    accepted: int
    accepted_correct: int
    refusal_recall: float
    coverage: float
    ece: float

    @property
    def accuracy(self) -> float:
        return self.accepted_correct / self.accepted if self.accepted else 0.0

    @property
    def accuracy_lower(self) -> float:
        return wilson_lower(self.accepted_correct, self.accepted)


def figures(cases: list[dict[str, Any]], outcomes: list[Outcome], out_of_fold: bool = True) -> Figures:
    """``out_of_fold``: the calibration error of tables fitted on each half of ``cases`` (the set
    the shipped table is fitted on); otherwise the shipped table's error on ``cases`` (the holdout)."""
    refuse = [o for o in outcomes if "refuse" in o.case]
    answerable = [o for o in outcomes if "refuse" not in o.case]
    accepted = [o for o in outcomes if o.accepted]
    return Figures(
        cases=len(outcomes), must_refuse=len(refuse), accepted=len(accepted),
        accepted_correct=sum(o.correct for o in accepted),
        refusal_recall=sum(not o.accepted for o in refuse) / len(refuse) if refuse else 1.0,
        coverage=sum(o.accepted for o in answerable) / len(answerable) if answerable else 0.0,
        ece=out_of_fold_ece(cases) if out_of_fold else expected_calibration_error(
            [(Decimal(0) if o.hard_refused else calibration.calibrate(o.raw), o.correct) for o in outcomes]),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true", help="refit calibration_table.py on the whole set")
    parser.add_argument("--show", action="store_true", help="list the wrong and the wrongly refused cases")
    parser.add_argument("--holdout", action="store_true",
                        help="score evalset/holdout.jsonl (written after the rules were frozen) instead")
    args = parser.parse_args(argv)
    cases = load_cases("holdout.jsonl" if args.holdout else "cases.jsonl")
    if args.fit and args.holdout:
        parser.error("the calibration is fitted on cases.jsonl only: the holdout must stay unseen")
    if args.fit:
        flat = tuple(Decimal("0.5") for _ in range(len(calibration.EDGES) - 1))
        points = [(o.raw, o.correct) for o in run(cases, bins=flat) if not o.hard_refused]
        bins = calibration.fit(points)
        path = Path(__file__).with_name("calibration_table.py")
        path.write_text(calibration.render_table(bins, f"evalset/cases.jsonl, {len(cases)} cases, {len(points)} drafts"),
                        encoding="utf-8")
        calibration.BINS = tuple(bins)  # this run's figures use the new table
        print(f"calibration_table.py refitted on {len(points)} drafts")
    outcomes = run(cases)
    f = figures(cases, outcomes, out_of_fold=not args.holdout)
    print(f"cases: {f.cases} ({f.must_refuse} must be refused, {f.must_refuse / f.cases:.0%})")
    print(f"accepted drafts: {f.accepted}, fully correct: {f.accepted_correct} = {f.accuracy:.1%} "
          f"(Wilson 95% lower bound {f.accuracy_lower:.1%})")
    print(f"refusal recall: {f.refusal_recall:.1%}")
    print(f"coverage (answerable cases accepted): {f.coverage:.1%}")
    print(f"expected calibration error ({'shipped table' if args.holdout else 'out of fold'}): {f.ece:.3f}")
    if args.show:
        for o in outcomes:
            if (o.accepted and not o.correct) or ("refuse" not in o.case and not o.accepted):
                print(f"  {o.case['id']}: raw {o.raw} {'ACCEPTED WRONG' if o.accepted else 'not accepted'}: {o.why}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
