from __future__ import annotations

from decimal import Decimal, localcontext
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stalela.kit.money import (
    decimal_places,
    decimal_str,
    money_str,
    multiply_money,
    round_money,
    round_money_ratio,
)

D = Decimal


@pytest.mark.parametrize(("value", "expected"), [
    ("0.005", "0.01"), ("0.015", "0.02"), ("0.025", "0.03"), ("1.004999", "1.00"),
    ("2.675", "2.68"), ("-0.005", "-0.01"), ("-0.004", "0.00"), ("7", "7.00"),
    ("1E+3", "1000.00"), ("9999999999999999.995", "10000000000000000.00"),
])
def test_round_money_half_up(value, expected):
    assert str(round_money(D(value))) == expected


def test_round_money_never_negative_zero():
    assert money_str(D("-0.001")) == "0.00"


def test_round_money_ignores_the_callers_context():
    with localcontext() as ctx:
        ctx.prec = 3
        assert multiply_money(D("123456.789"), D("1000.01")) == D("123458023.57")  # .56789
        assert round_money(D("123456.785")) == D("123456.79")


@pytest.mark.parametrize(("value", "places"), [
    ("1", 0), ("1.5", 1), ("1.500", 1), ("0.001", 3), ("1E+2", 0), ("100", 0), ("0.10", 1),
])
def test_decimal_places(value, places):
    assert decimal_places(D(value)) == places


def test_decimal_places_of_int_and_non_finite():
    assert decimal_places(12) == 0
    with pytest.raises(ValueError):
        decimal_places(D("NaN"))


@pytest.mark.parametrize(("value", "text"), [
    ("1234.5", "1234.50"), ("0", "0.00"), ("1E+3", "1000.00"), ("0.10", "0.10"),
])
def test_money_str(value, text):
    assert money_str(D(value)) == text


@pytest.mark.parametrize(("value", "text"), [
    ("2.500", "2.5"), ("1E+2", "100"), ("0.000", "0"), ("0.16", "0.16"), ("12", "12"),
])
def test_decimal_str(value, text):
    assert decimal_str(D(value)) == text


def test_round_money_ratio_examples():
    assert round_money_ratio(D("100.00") * D("0.16"), D("1.16")) == D("13.79")  # 13.793...
    assert round_money_ratio(D("100.05"), D("10")) == D("10.01")  # tie 10.005
    assert round_money_ratio(D("-100.05"), D("10")) == D("-10.01")
    with pytest.raises(ZeroDivisionError):
        round_money_ratio(D("1"), D("0"))


def _half_up(x: Fraction) -> Fraction:
    cents = abs(x) * 100
    whole = int(cents)
    if cents - whole >= Fraction(1, 2):
        whole += 1
    return Fraction(whole if x >= 0 else -whole, 100)


amounts = st.integers(-10**15, 10**15).map(lambda n: Decimal(n).scaleb(-3))
divisors = st.integers(1, 10**9).map(lambda n: Decimal(n).scaleb(-4))


@settings(max_examples=200, deadline=None)
@given(n=amounts, d=divisors)
def test_round_money_ratio_matches_exact_half_up(n, d):
    assert Fraction(round_money_ratio(n, d)) == _half_up(Fraction(n) / Fraction(d))


@settings(max_examples=200, deadline=None)
@given(a=amounts, b=amounts)
def test_multiply_money_matches_exact_half_up(a, b):
    assert Fraction(multiply_money(a, b)) == _half_up(Fraction(a) * Fraction(b))
