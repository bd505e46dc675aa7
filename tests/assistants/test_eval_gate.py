"""The gate of issue 19, item 7, on the hand-written evaluation set: accepted drafts >= 97 % fully
correct, every must-refuse case refused, calibration error <= 0.05 (out of fold), and the set's
own shape (>= 200 cases, >= a quarter to refuse, both languages and both jurisdictions)."""
from __future__ import annotations

from collections import Counter
from decimal import Decimal

from stalela.assistants.parser import calibration
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
