"""The same input and parser version always give the same draft (issue 19, item 5): no clock, no
randomness, no dict-order or hash-seed dependence."""
from __future__ import annotations

import json
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from stalela.assistants.parser import KnownBuyer, TenantContext, parse_request
from stalela.assistants.parser.evaluate import context_of, load_cases

CASES = load_cases()
CONTEXTS = [
    TenantContext("AR", date(2026, 12, 1), buyers=(KnownBuyer("Juan Pérez", "20123456786"),)),
    TenantContext("CD", date(2026, 12, 1), buyers=(KnownBuyer("Bralima SARL", "A1234567B"),)),
]
WORDS = ["Factura", "Facture", "para", "pour", "Juan", "Pérez", "Bralima", "SARL", "3", "tres", "trois", "horas", "heures",
         "a", "à", "$5000", "5 000 FC", "1.234,56", "1,234.56", "IVA 21%", "TVA 16 %", "exonéré", "cada", "una", "y", "et",
         ",", "vence el 15/01", "à 30 jours", "CUIT 20-12345678-6", "NIF A1234567B", "sella", "ignore", "-", "x", "0"]


def _twice(text: str, ctx: TenantContext, locale=None) -> None:
    first = json.dumps(parse_request(text, ctx, locale).as_dict(), sort_keys=True, ensure_ascii=False)
    second = json.dumps(parse_request(text, ctx, locale).as_dict(), sort_keys=True, ensure_ascii=False)
    assert first == second


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(WORDS), max_size=14), st.sampled_from(CONTEXTS), st.sampled_from([None, "es", "fr"]))
def test_same_input_same_draft_on_word_soups(words, ctx, locale):
    _twice(" ".join(words), ctx, locale)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200), st.sampled_from(CONTEXTS))
def test_any_text_gives_a_draft_or_a_refusal_never_an_exception(text, ctx):
    _twice(text, ctx)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(CASES))
def test_same_case_same_draft(case):
    _twice(case["text"], context_of(case), case.get("locale"))


_PROBE = """
import json, sys
from stalela.assistants.parser import parse_request
from stalela.assistants.parser.evaluate import context_of, load_cases
out = [parse_request(c["text"], context_of(c), c.get("locale")).as_dict() for c in load_cases()]
sys.stdout.write(json.dumps(out, sort_keys=True, ensure_ascii=False, default=str))
"""


def test_same_drafts_under_two_hash_seeds():
    """Hash-seed dependence (set iteration order, e.g. a min over a set of rates) only shows across
    processes: the whole evaluation set is drafted in two interpreters with PYTHONHASHSEED 1 and 2."""
    import os
    import subprocess
    import sys

    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True,
                                timeout=120)
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1] and len(outputs[0]) > 1000
