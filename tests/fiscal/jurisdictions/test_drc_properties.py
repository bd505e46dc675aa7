"""Properties of the DRC totals over random invoices (exact arithmetic as the oracle)."""
from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from stalela.fiscal.core.invoice import InvoiceDraft
from stalela.fiscal.jurisdictions import get_jurisdiction
from tests.fiscal.drafts import line

CD = get_jurisdiction("CD")
CENT = Fraction(1, 100)
HALF_CENT = Fraction(1, 200)
FAST = settings(max_examples=200, deadline=None)

# Groups usable together on a domestic sale without a buyer (D needs AO, E needs export).
GOODS = list("ABCFGHIJKM")
VAT_GROUPS = list("BCFG")


def scaled(places: int, high: int) -> st.SearchStrategy[Decimal]:
    return st.integers(0, high).map(lambda n: Decimal(n).scaleb(-places))


quantities = scaled(3, 50_000_000).filter(lambda q: q > 0)
prices = scaled(2, 10_000_000_000)


@st.composite
def drc_lines(draw, groups=GOODS):
    n = draw(st.integers(1, 12))
    lines = [line(draw(st.sampled_from(groups)), draw(quantities), draw(prices)) for _ in range(n)]
    if draw(st.booleans()) and any(ln.tax_group == "M" for ln in lines):
        lines.append(line("N", draw(quantities), draw(prices)))
    return tuple(lines)


modes = st.sampled_from(["ht", "ttc"])


@FAST
@given(lines=drc_lines(), mode=modes)
def test_totals_add_up(lines, mode):
    computed = CD.compute(InvoiceDraft(type="FV", price_mode=mode, lines=lines))
    totals = computed.totals
    assert totals.total == sum(g.base + g.vat for g in totals.groups)
    vat_f_g = sum(g.vat for g in totals.groups if g.group in ("F", "G"))
    assert totals.vat_settled_by_credit == vat_f_g
    assert totals.payable == totals.total - vat_f_g
    for g in totals.groups:
        assert g.amount == sum(ln.amount for ln in computed.lines if ln.tax_group == g.group)
        assert g.base >= 0 and g.vat >= 0


@FAST
@given(lines=drc_lines())
def test_ttc_total_is_the_sum_of_line_amounts(lines):
    # Tax-included prices: what the customer sees on the lines is what the invoice totals.
    computed = CD.compute(InvoiceDraft(type="FV", price_mode="ttc", lines=lines))
    assert computed.total == sum(ln.amount for ln in computed.lines)
    for g in computed.totals.groups:
        assert g.base + g.vat == g.amount


@FAST
@given(lines=drc_lines(), mode=modes)
def test_line_amounts_within_half_a_cent_of_exact(lines, mode):
    computed = CD.compute(InvoiceDraft(type="FV", price_mode=mode, lines=lines))
    for ln in computed.lines:
        exact = Fraction(ln.quantity) * Fraction(ln.unit_price)
        assert abs(Fraction(ln.amount) - exact) <= HALF_CENT


@FAST
@given(lines=drc_lines(), mode=modes)
def test_group_vat_never_drifts_more_than_a_cent(lines, mode):
    computed = CD.compute(InvoiceDraft(type="FV", price_mode=mode, lines=lines))
    for g in computed.totals.groups:
        rate, amount = Fraction(g.rate), Fraction(g.amount)
        if g.group == "N":
            exact_vat, exact_base = amount, Fraction(0)
        elif mode == "ht":
            exact_vat, exact_base = amount * rate, amount
        else:
            exact_vat = amount * rate / (1 + rate)
            exact_base = amount - exact_vat
        # Half-up rounding once per group: at most half a cent, well inside the one-cent budget.
        assert abs(Fraction(g.vat) - exact_vat) <= HALF_CENT
        assert abs(Fraction(g.base) - exact_base) <= HALF_CENT
        assert abs(Fraction(g.vat) - exact_vat) <= CENT


@FAST
@given(lines=drc_lines(VAT_GROUPS + ["A", "M"]))
def test_ttc_and_ht_agree_when_prices_are_converted(lines):
    ht = CD.compute(InvoiceDraft(type="FV", price_mode="ht", lines=lines)).totals
    # Convert each group's HT amount into one tax-included price (quantity 1) and bill it TTC.
    converted = tuple(line(g.group, "1", g.base + g.vat) for g in ht.groups)
    ttc = CD.compute(InvoiceDraft(type="FV", price_mode="ttc", lines=converted)).totals
    assert ttc.total == ht.total
    for a, b in zip(ht.groups, ttc.groups, strict=True):
        assert a.group == b.group
        assert abs(a.vat - b.vat) <= Decimal("0.01")
        assert abs(a.base - b.base) <= Decimal("0.01")


@FAST
@given(lines=drc_lines(), mode=modes)
def test_line_order_does_not_change_totals(lines, mode):
    forward = CD.compute(InvoiceDraft(type="FV", price_mode=mode, lines=lines))
    backward = CD.compute(InvoiceDraft(type="FV", price_mode=mode, lines=lines[::-1]))
    assert forward.totals_as_json() == backward.totals_as_json()
