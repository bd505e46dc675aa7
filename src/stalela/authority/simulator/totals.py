"""The authority's own totals of an invoice request.

Deliberately independent of ``stalela.fiscal``: the simulator plays the DGI, whose arithmetic our
sync agent must *check* against ours before confirming. Sharing the code would hide exactly the
disagreements the two-phase protocol exists to catch.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext

CENT = Decimal("0.01")
ZERO = Decimal("0")

# VAT rate of each tax group; every group not listed carries no VAT on the invoice.
VAT_RATES: dict[str, Decimal] = {
    "B": Decimal("0.16"),
    "C": Decimal("0.08"),
    "F": Decimal("0.16"),
    "G": Decimal("0.08"),
}
TAX_GROUPS = tuple("ABCDEFGHIJKLMN")
# Group N lines are the specific VAT of group M sales: the whole line amount is VAT.
AMOUNT_IS_VAT = frozenset("N")


@dataclass(frozen=True)
class GroupTotal:
    amount: Decimal
    base: Decimal
    vat: Decimal


@dataclass(frozen=True)
class Totals:
    groups: dict[str, GroupTotal]  # only the groups present, in letter order
    total: Decimal
    vtotal: Decimal


def round_money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def money(value: Decimal) -> str:
    """The wire form of an amount: a string with exactly two decimals."""
    return str(round_money(value))


def _group_split(letter: str, amount: Decimal, mode: str) -> GroupTotal:
    if letter in AMOUNT_IS_VAT:
        return GroupTotal(amount, ZERO, amount)
    rate = VAT_RATES.get(letter)
    if rate is None:
        return GroupTotal(amount, amount, ZERO)
    if mode == "ttc":
        # Prices include VAT: extract it from the group amount, the base is what remains.
        vat = round_money(amount * rate / (1 + rate))
        return GroupTotal(amount, amount - vat, vat)
    return GroupTotal(amount, amount, round_money(amount * rate))


def compute_totals(lines: Iterable[tuple[str, Decimal, Decimal]], mode: str) -> Totals:
    """Totals of ``(tax_group, quantity, price)`` lines, rounded per line then per group."""
    # A wide context: 28 significant digits could silently round a large quantity x price.
    with localcontext() as ctx:
        ctx.prec = 60
        amounts: dict[str, Decimal] = {}
        for group, quantity, price in lines:
            amounts[group] = amounts.get(group, ZERO) + round_money(quantity * price)
        groups = {g: _group_split(g, amounts[g], mode) for g in sorted(amounts)}
        total = sum((g.base + g.vat for g in groups.values()), ZERO)
        vtotal = sum((g.vat for g in groups.values()), ZERO)
    return Totals(groups, round_money(total), round_money(vtotal))


def totals_to_wire(totals: Totals) -> dict:
    return {
        "totals": {
            letter: {"amount": money(g.amount), "base": money(g.base), "vat": money(g.vat)}
            for letter, g in totals.groups.items()
        },
        "total": money(totals.total),
        "vtotal": money(totals.vtotal),
    }
