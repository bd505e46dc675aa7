from __future__ import annotations

import pytest

from stalela.fiscal.core.numbering import (
    FiscalNumber,
    format_fiscal_number,
    is_fiscal_number,
    parse_fiscal_number,
)


@pytest.mark.parametrize(("outlet", "counter", "text"), [
    ("SHOP1", 42, "SHOP1-00000042"),
    ("SHOP1", 1, "SHOP1-00000001"),
    ("SHOP1", 99_999_999, "SHOP1-99999999"),
    ("SHOP1", 100_000_000, "SHOP1-100000000"),  # grows wider, never wraps
    ("kin-gombe_2", 7, "kin-gombe_2-00000007"),  # hyphens in the outlet code
    ("X" * 32, 3, "X" * 32 + "-00000003"),
])
def test_format_and_parse_round_trip(outlet, counter, text):
    assert format_fiscal_number(outlet, counter) == text
    assert parse_fiscal_number(text) == FiscalNumber(outlet, counter)
    assert str(parse_fiscal_number(text)) == text


@pytest.mark.parametrize(("outlet", "counter"), [
    ("", 1), ("SHOP 1", 1), ("X" * 33, 1), ("SHOP/1", 1), ("SHOP1", 0), ("SHOP1", -1),
    ("SHOP1", True), ("SHOP1", 1.0),
])
def test_format_rejects(outlet, counter):
    with pytest.raises(ValueError):
        format_fiscal_number(outlet, counter)


@pytest.mark.parametrize("text", [
    "", "SHOP1", "SHOP1-", "-00000001", "SHOP1-42", "SHOP1-000000042", "SHOP1-00000000",
    "SHOP1-0000004x", "SHOP1_00000042", "SHOP 1-00000042", "SHOP1-０００００００１", None,
])
def test_parse_rejects(text):
    with pytest.raises(ValueError):
        parse_fiscal_number(text)
    assert not is_fiscal_number(text)
