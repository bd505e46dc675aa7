"""Money as ``Decimal``, never ``float``.

Every amount in Stalela has two decimals and is rounded half-up (0.005 -> 0.01), the rule cash
registers and most tax administrations apply (see docs/jurisdictions/drc.md for why it is ours).

The helpers here never depend on the caller's thread-local decimal context: products and quotients
are computed exactly (a wide private context, or integer arithmetic) and rounded once, so a line
amount or a VAT figure cannot be double-rounded whatever the surrounding code configured.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation, localcontext
from fractions import Fraction

CENT = Decimal("0.01")
ZERO = Decimal("0.00")

# Wide enough that multiplying two validated inputs (quantity < 10^12 with 3 places, price < 10^16
# with 2 places: at most 33 digits) is exact; rounding happens only in `round_money`.
_EXACT = Context(prec=120, rounding=ROUND_HALF_UP, traps=[InvalidOperation])


def money_context() -> AbstractContextManager[Context]:
    """A decimal context in which sums and products of validated amounts are exact.

    Run money arithmetic inside it so that results never depend on the precision or rounding the
    calling thread happens to have configured.
    """
    return localcontext(_EXACT)


def round_money(value: Decimal | int) -> Decimal:
    """``value`` rounded half-up (away from zero on a tie) to exactly 2 decimal places."""
    rounded = _EXACT.create_decimal(value).quantize(CENT, rounding=ROUND_HALF_UP, context=_EXACT)
    # -0.001 rounds to -0.00; a negative zero would print as "-0.00" and hash differently.
    return rounded.copy_abs() if rounded.is_zero() else rounded


def multiply_money(a: Decimal | int, b: Decimal | int) -> Decimal:
    """``round_money(a * b)`` with the product computed exactly."""
    return round_money(_EXACT.multiply(Decimal(a), Decimal(b)))


def round_money_ratio(numerator: Decimal | int, denominator: Decimal | int) -> Decimal:
    """``round_money(numerator / denominator)`` for the exact quotient.

    Used where a division appears (VAT extracted from a tax-inclusive amount, a foreign-currency
    equivalent): the quotient is usually non-terminating (x * 0.16 / 1.16 = 4x/29), so it is
    computed as a fraction instead of a truncated decimal that could sit on the wrong side of a .005 tie.
    """
    if Decimal(denominator).is_zero():
        raise ZeroDivisionError("round_money_ratio: denominator is zero")
    cents = Fraction(Decimal(numerator)) * 100 / Fraction(Decimal(denominator))
    magnitude = abs(cents)
    whole, remainder = divmod(magnitude.numerator, magnitude.denominator)
    if 2 * remainder >= magnitude.denominator:
        whole += 1
    if cents < 0 and whole:
        whole = -whole
    return Decimal(f"{whole}E-2").quantize(CENT, context=_EXACT)


def decimal_places(value: Decimal | int) -> int:
    """Significant decimal places: trailing zeros do not count (``1.500`` has 1, ``100`` has 0)."""
    if isinstance(value, int):
        return 0
    if not value.is_finite():
        raise ValueError(f"decimal_places: {value} is not finite")
    exponent = value.normalize(_EXACT).as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def money_str(value: Decimal | int) -> str:
    """The amount as a plain string with exactly 2 decimals: ``"1234.50"``, never an exponent."""
    return format(round_money(value), "f")


def decimal_str(value: Decimal | int) -> str:
    """The shortest plain string for ``value``: ``"2.5"`` for ``2.500``, ``"100"`` for ``1E+2``."""
    if isinstance(value, int):
        return str(value)
    if not value.is_finite():
        raise ValueError(f"decimal_str: {value} is not finite")
    normalized = value.normalize(_EXACT)
    if normalized.is_zero():
        return "0"
    return format(normalized, "f")
