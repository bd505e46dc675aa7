"""The fast canonical JSON is byte for byte the reference RFC 8785 implementation, on any JSON."""
from __future__ import annotations

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from stalela.kit import canonical

scalars = (st.none() | st.booleans() | st.text() | st.integers(min_value=-2**60, max_value=2**60)
           | st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(scalars, lambda children: st.lists(children, max_size=5)
                           | st.dictionaries(st.text(max_size=8), children, max_size=5), max_leaves=30)


@settings(max_examples=600, deadline=None)
@given(json_values)
def test_equals_the_reference_on_any_json(value):
    try:
        expected = rfc8785.dumps(value)
    except Exception as exc:  # noqa: BLE001 - whatever the reference refuses, we refuse the same way
        try:
            canonical.dumps(value)
        except Exception as ours:  # noqa: BLE001
            assert type(ours) is type(exc)
            return
        raise AssertionError(f"accepted what rfc8785 refuses: {value!r}")
    assert canonical.dumps(value) == expected


def test_the_subset_that_takes_the_fast_path():
    payload = {"b": "caf\u00e9 \u2028 \x00 \x1f \"q\" \\", "a": [1, -2**53 + 1, 2**53 - 1, None, True, False, {}],
               "z": {"y": "\U0001f600", "x": ""}}
    assert canonical._simple(payload)
    assert canonical.dumps(payload) == rfc8785.dumps(payload)
    assert not canonical._simple({"n": 2**53}) and not canonical._simple({"f": 1.5})
    assert not canonical._simple({"\u00e9": 1})
    assert canonical.dumps({"\ue000": 1, "\U0001f600": 2}) == rfc8785.dumps({"\ue000": 1, "\U0001f600": 2})
