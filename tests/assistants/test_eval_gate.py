"""The gate of issue 19, item 7, on the hand-written evaluation set: accepted drafts >= 97 % fully
correct, every must-refuse case refused, calibration error <= 0.05 (out of fold), and the set's
own shape (>= 200 cases, >= a quarter to refuse, both languages and both jurisdictions)."""
from __future__ import annotations

from collections import Counter
from decimal import Decimal

from stalela.assistants.parser import calibration
from stalela.assistants.parser.draft import detect_language
from stalela.assistants.parser.evaluate import figures, load_cases, run

CASES = load_cases()


def test_the_evaluation_set_has_its_shape():
    assert len(CASES) >= 200
    assert len({c["id"] for c in CASES}) == len(CASES)
    refuse = [c for c in CASES if "refuse" in c]
    assert len(refuse) >= len(CASES) / 4
    assert all(("refuse" in c) != ("expect" in c) for c in CASES)
    jurisdictions = Counter(c["jur"] for c in CASES)
    assert jurisdictions["AR"] >= 80 and jurisdictions["CD"] >= 80
    # A case's language is its ``locale`` hint, else what the parser detects (evalset/README.md): 151 Spanish
    # and 133 French today. Both, in numbers, among the cases to answer and those to refuse.
    languages = Counter((c.get("locale") or detect_language(c["text"]), "refuse" in c) for c in CASES)
    for lang in ("es", "fr"):
        assert languages[(lang, False)] + languages[(lang, True)] >= 100, (lang, languages)
        assert languages[(lang, False)] >= 40 and languages[(lang, True)] >= 40, (lang, languages)
    assert sum("adversarial" in c.get("tags", ()) for c in CASES) >= 10


def test_the_gate():
    outcomes = run(CASES)
    f = figures(CASES, outcomes)
    wrong = [o.case["id"] for o in outcomes if o.accepted and not o.correct]
    assert f.accuracy >= 0.97, f"accepted but wrong: {wrong}"
    missed = [o.case["id"] for o in outcomes if "refuse" in o.case and o.accepted]
    assert not missed, f"must-refuse cases accepted: {missed}"
    assert f.ece <= 0.05


def test_the_shipped_calibration_is_the_fit_of_the_set():
    """calibration_table.py is data fitted on the set: changing the parser or the set without refitting
    (python -m stalela.assistants.parser.evaluate --fit) fails here."""
    flat = tuple(Decimal("0.5") for _ in range(len(calibration.EDGES) - 1))
    points = [(o.raw, o.correct) for o in run(CASES, bins=flat) if not o.hard_refused]
    assert tuple(Decimal(v) for v in calibration.fit(points)) == calibration.table()


def test_confidence_is_monotone_in_the_evidence():
    table = calibration.table()
    assert list(table) == sorted(table)


def _shipped_pairs():
    return [(Decimal(0) if o.hard_refused else calibration.calibrate(o.raw), o.correct) for o in run(CASES)]


def test_the_calibration_check_fails_on_a_miscalibrated_table():
    """Item 12 of the review: the gate must be able to fail. An under-confident table (0.6 for every
    draft) fails the ECE bound. An over-confident one (0.99 everywhere) barely moves the ECE on this
    set (a handful of wrong drafts among 284 cases: about 0.01), so it is the refusal check that
    catches it: the low-evidence must-refuse drafts are then accepted."""
    from stalela.assistants.parser.evaluate import expected_calibration_error

    def pairs_with(table):
        outcomes = run(CASES, bins=table)
        return outcomes, [(Decimal(0) if o.hard_refused else calibration.calibrate(o.raw, table), o.correct)
                          for o in outcomes]

    _, under = pairs_with(tuple(Decimal("0.6") for _ in range(len(calibration.EDGES) - 1)))
    assert expected_calibration_error(under) > 0.05
    outcomes, _ = pairs_with(tuple(Decimal("0.99") for _ in range(len(calibration.EDGES) - 1)))
    assert [o.case["id"] for o in outcomes if "refuse" in o.case and o.accepted]
    assert expected_calibration_error(_shipped_pairs()) <= 0.05


def test_the_calibration_check_fails_when_the_labels_are_wrong():
    """The same table graded against labels where every third accepted draft is wrong: a 33 % error
    rate the table does not predict must push the ECE over the bound."""
    from stalela.assistants.parser.evaluate import expected_calibration_error

    pairs = _shipped_pairs()
    flipped, k = [], 0
    for confidence, correct in pairs:
        if confidence >= Decimal("0.85"):
            k += 1
            correct = correct and k % 3 != 0
        flipped.append((confidence, correct))
    assert expected_calibration_error(flipped) > 0.05


def test_low_evidence_drafts_are_refused_from_data_not_from_empty_bins():
    """The set holds drafts the rules cannot catch (a buyer written inside the item, tag
    low_evidence): their raw scores fall in the lowest bins, which therefore hold data and map below
    the threshold because those drafts were wrong there, not because the bins are empty."""
    flat = tuple(Decimal("0.5") for _ in range(len(calibration.EDGES) - 1))
    drafts = [o for o in run(CASES, bins=flat) if not o.hard_refused]
    low = [o for o in drafts if calibration.bin_of(o.raw) <= 1]
    assert len(low) >= 4 and sum(o.correct for o in low) / len(low) < 0.5
    assert all(calibration.table()[b] < Decimal("0.85") for b in (0, 1))
