"""FastJSONResponse writes Starlette's JSONResponse bytes for float-free documents, and fails where it fails."""
from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from fastapi.responses import JSONResponse
from hypothesis import given, settings
from hypothesis import strategies as st

from stalela.kit.fastjson import FastJSONResponse

# Every character, control characters, U+2028 and astral ones included; lone surrogates apart (below).
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
scalars = st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | text
documents = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(text, inner, max_size=5),
                         max_leaves=40)


@settings(max_examples=600, deadline=None)
@given(documents)
def test_same_bytes_as_starlette(document):
    assert FastJSONResponse(document).body == JSONResponse(document).body


def test_a_sealed_invoice_answer():
    document = {"id": "inv_01", "counter": 7, "lines": [{"description": "Sac de riz 25 kg — «bio»\n", "quantity": "2"}],
                "seal": {"payload": {"v": 2, "buyer_tax_id": None}, "algorithm": "ES256"}, "replayed": False}
    assert FastJSONResponse(document, status_code=201).body == JSONResponse(document, status_code=201).body


@pytest.mark.parametrize("document", [{1: "int key"}, {None: 1, True: 2}, 2**64, [-(2**63) - 1], ("a", 1)])
def test_what_orjson_refuses_is_encoded_by_json(document):
    assert FastJSONResponse(document).body == JSONResponse(document).body


@dataclasses.dataclass
class _NotJson:
    x: int = 1


@pytest.mark.parametrize("document", [{"at": dt.datetime(2026, 1, 1)}, [dt.date(2026, 1, 1)], {"d": _NotJson()},
                                      {"s": "\ud800"}])
def test_what_json_refuses_still_fails(document):
    with pytest.raises((TypeError, ValueError)) as expected:
        JSONResponse(document)
    with pytest.raises(expected.type):
        FastJSONResponse(document)
