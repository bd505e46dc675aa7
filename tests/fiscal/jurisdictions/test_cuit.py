"""CUIT/CUIL: 11 digits, mod-11 check digit weighted 5,4,3,2,7,6,5,4,3,2."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stalela.fiscal.jurisdictions.cuit import (
    InvalidCuit,
    check_cuit,
    check_digit,
    format_cuit,
    is_valid_cuit,
    normalize_cuit,
)

# Published or recorded CUITs, and ones worked out by hand in the comments.
VALID = [
    "20267565393",  # pyafipws' test issuer
    "30000000007",  # the buyer in ARCA's recorded FECAESolicitar: 3x5 = 15, 15 % 11 = 4, 11 - 4 = 7
    "33693450239",  # prefix 33: 3,3,6,9,3,4,5,0,2,3 -> 145, 145 % 11 = 2, digit 9
    "20000000001",  # 2x5 = 10, 10 % 11 = 10, digit 1
    "27000000006",  # 2x5 + 7x4 = 38, 38 % 11 = 5, digit 6
]


def test_remainder_zero_gives_digit_zero():
    body = next(f"{n:010d}" for n in range(1, 10_000) if _weighted(f"{n:010d}") % 11 == 0)
    assert check_digit(body) == 0
    assert is_valid_cuit(body + "0")


def _weighted(body: str) -> int:
    return sum(int(d) * w for d, w in zip(body, (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)))


@pytest.mark.parametrize("cuit", VALID)
def test_known_valid(cuit):
    assert is_valid_cuit(cuit)
    assert check_cuit(cuit) == cuit


def test_hyphenated_form_is_normalized():
    assert check_cuit("20-26756539-3") == "20267565393"
    assert format_cuit("20267565393") == "20-26756539-3"


@pytest.mark.parametrize("cuit", ["20267565394", "30000000008", "33693450238", "20267565390"])
def test_wrong_check_digit(cuit):
    with pytest.raises(InvalidCuit) as info:
        check_cuit(cuit)
    assert info.value.reason == "check_digit"
    assert not is_valid_cuit(cuit)


@pytest.mark.parametrize("text", [
    "2026756539", "202675653933", "20 26756539 3", "20.26756539.3", "20-2675653-93", "2026756539a",
    "２０２６７５６５３９３", "٢٠٢٦٧٥٦٥٣٩٣", "", None, 20267565393,
])
def test_format(text):
    with pytest.raises(InvalidCuit) as info:
        check_cuit(text)
    assert info.value.reason == "format"
    assert normalize_cuit(text) is None


def test_remainder_one_has_no_valid_number():
    body = next(f"20{n:08d}" for n in range(100_000) if _weighted(f"20{n:08d}") % 11 == 1)
    assert check_digit(body) is None
    for digit in "0123456789":
        with pytest.raises(InvalidCuit) as info:
            check_cuit(body + digit)
        assert info.value.reason == "check_digit"


def test_reassigned_prefixes_pass_the_same_formula():
    # A man's 20-DNI with remainder 1 is assigned 23-DNI-9, a woman's 27-DNI 23-DNI-4, a company's
    # 30-N 33-N-9: the ordinary formula accepts them, no special case.
    man = next(f"{n:08d}" for n in range(100_000) if _weighted(f"20{n:08d}") % 11 == 1)
    assert check_cuit(f"23{man}9")
    woman = next(f"{n:08d}" for n in range(100_000) if _weighted(f"27{n:08d}") % 11 == 1)
    assert check_cuit(f"23{woman}4")
    company = next(f"{n:08d}" for n in range(100_000) if _weighted(f"30{n:08d}") % 11 == 1)
    assert check_cuit(f"33{company}9")


@given(st.text(alphabet="0123456789", min_size=10, max_size=10))
def test_exactly_one_digit_or_none_completes_a_body(body):
    valid = [d for d in "0123456789" if is_valid_cuit(body + d)]
    assert len(valid) == (0 if _weighted(body) % 11 == 1 else 1)
