"""Properties of the WSFEv1 figures over random AR receipts (exact fractions as the oracle).

The rounding rule (docs/jurisdictions/ar.md, "Rounding"): IVA is rounded half-up to the cent once
per rate. So in net mode each Importe is within half a cent of BaseImp x rate; in gross mode
Importe is within half a cent of amount x rate / (1 + rate) and BaseImp + Importe is the group's
amount exactly, which puts Importe within (1 + rate) / 2 cents of BaseImp x rate: under a cent.
"""
from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from stalela.fiscal.jurisdictions import get_jurisdiction
from tests.fiscal.ar_drafts import ar_draft, ar_line, c_line, ri_buyer

AR = get_jurisdiction("AR")
HALF_CENT = Fraction(1, 200)
FAST = settings(max_examples=300, deadline=None)
RATES = {"0": 0, "2.5": Fraction(25, 1000), "5": Fraction(5, 100), "10.5": Fraction(105, 1000),
         "21": Fraction(21, 100), "27": Fraction(27, 100)}
ALIC_ID = {"0": 3, "10.5": 4, "21": 5, "27": 6, "5": 8, "2.5": 9}
RATE_OF_ID = {v: k for k, v in ALIC_ID.items()}
CODES = [*RATES, "exento", "no_gravado"]


def scaled(places: int, high: int) -> st.SearchStrategy[Decimal]:
    return st.integers(0, high).map(lambda n: Decimal(n).scaleb(-places))


quantities = scaled(3, 5_000_000).filter(lambda q: q > 0)
prices = scaled(2, 100_000_000)  # up to 1,000,000.00 a unit


@st.composite
def receipts(draw):
    letter = draw(st.sampled_from("ABC"))
    n = draw(st.integers(1, 10))
    if letter == "C":
        lines = [c_line(draw(quantities), draw(prices)) for _ in range(n)]
        return ar_draft(*lines, type="11", buyer=ri_buyer(vat_condition="exento"),
                        price_mode=draw(st.sampled_from([None, "net", "gross"])))
    lines = [ar_line(draw(st.sampled_from(CODES)), draw(quantities), draw(prices))
             for _ in range(n)]
    # A buyer identified by CUIT keeps the consumidor-final threshold out of the way.
    buyer = ri_buyer() if letter == "A" else ri_buyer(vat_condition="exento")
    return ar_draft(*lines, type="1" if letter == "A" else "6", buyer=buyer,
                    price_mode=draw(st.sampled_from([None, "net", "gross"])))


def money(text: str) -> Fraction:
    return Fraction(Decimal(text))


@FAST
@given(d=receipts())
def test_imp_total_is_the_sum_of_its_parts(d):
    computed = AR.compute(d)
    x = computed.extra
    parts = sum(money(x[k]) for k in ("imp_tot_conc", "imp_neto", "imp_op_ex", "imp_trib",
                                      "imp_iva"))
    assert money(x["imp_total"]) == parts
    assert money(x["imp_total"]) == Fraction(computed.total)
    assert money(x["imp_iva"]) == sum(money(a["importe"]) for a in x["iva"])
    taxed_bases = sum(money(a["base_imp"]) for a in x["iva"])
    if x["letter"] == "C":
        assert x["iva"] == [] and x["imp_iva"] == "0.00"
        assert money(x["imp_neto"]) == money(x["imp_total"])
    else:
        assert money(x["imp_neto"]) == taxed_bases
    ids = [a["id"] for a in x["iva"]]
    assert ids == sorted(set(ids))
    for key in ("imp_total", "imp_tot_conc", "imp_neto", "imp_op_ex", "imp_trib", "imp_iva"):
        assert Decimal(x[key]).as_tuple().exponent == -2


@FAST
@given(d=receipts())
def test_each_importe_follows_the_rounding_rule(d):
    computed = AR.compute(d)
    for alic in computed.extra["iva"]:
        code = RATE_OF_ID[alic["id"]]
        rate = RATES[code]
        base, importe = money(alic["base_imp"]), money(alic["importe"])
        amount = Fraction(computed.totals.group(code).amount)
        assert amount == sum(Fraction(ln.amount) for ln in computed.lines if ln.vat_rate == code)
        if computed.price_mode == "net":
            assert base == amount
            assert abs(importe - base * rate) <= HALF_CENT
        else:
            assert base + importe == amount
            assert abs(importe - amount * rate / (1 + rate)) <= HALF_CENT
            assert abs(importe - base * rate) < Fraction(1, 100)


@FAST
@given(d=receipts())
def test_gross_total_is_what_the_lines_say(d):
    computed = AR.compute(d)
    if computed.price_mode == "gross":
        assert computed.total == sum(ln.amount for ln in computed.lines)
    for g in computed.totals.groups:
        assert g.base >= 0 and g.vat >= 0
