"""Ids: prefix, 26 Crockford base32 characters of a 128-bit value, increasing within the process."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stalela.kit import ids


def _one_char_at_a_time(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        out.append(ids._ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


@given(st.integers(min_value=0, max_value=2**130 - 1), st.integers(min_value=1, max_value=27))
def test_encoding_is_base32_most_significant_first(value, length):
    assert ids._encode(value, length) == _one_char_at_a_time(value, length)


def test_ids_increase_and_parse():
    made = [ids.new_id("inv") for _ in range(2000)]
    assert made == sorted(made) and len(set(made)) == len(made)
    assert all(ids.looks_like_id(i, "inv") for i in made)
