"""Worked numeric examples; the same figures appear in docs/jurisdictions/drc.md."""
from __future__ import annotations

from decimal import Decimal

from stalela.fiscal.core.invoice import Exchange
from stalela.fiscal.jurisdictions import get_jurisdiction
from tests.fiscal.drafts import draft, line

CD = get_jurisdiction("CD")


def groups(computed) -> dict[str, tuple[str, str, str, str]]:
    return {g["group"]: (g["rate"], g["amount"], g["base"], g["vat"])
            for g in computed.totals_as_json()["groups"]}


def test_example_1_prices_before_tax():
    computed = CD.compute(draft(
        line("B", "3", "1000.00"),
        line("C", "2", "250.50"),
        line("A", "1", "100"),
    ))
    assert computed.totals_as_json() == {
        "groups": [
            {"group": "A", "rate": "0", "amount": "100.00", "base": "100.00", "vat": "0.00"},
            {"group": "B", "rate": "0.16", "amount": "3000.00", "base": "3000.00", "vat": "480.00"},
            {"group": "C", "rate": "0.08", "amount": "501.00", "base": "501.00", "vat": "40.08"},
        ],
        "total": "4121.08",
        "vat_settled_by_credit": "0.00",
        "payable": "4121.08",
    }


def test_example_2_prices_tax_included():
    computed = CD.compute(draft(
        line("B", "1", "1160.00"),
        line("B", "1", "100.00"),
        line("C", "1", "108.00"),
        price_mode="ttc",
    ))
    # B: 1260.00 x 0.16 / 1.16 = 173.7931... -> 173.79; base = 1260.00 - 173.79
    assert groups(computed) == {
        "B": ("0.16", "1260.00", "1086.21", "173.79"),
        "C": ("0.08", "108.00", "100.00", "8.00"),
    }
    assert computed.totals_as_json()["total"] == "1368.00"  # = the sum of the TTC line amounts


def test_example_3_regulated_price_with_specific_vat():
    for mode in ("ht", "ttc"):
        computed = CD.compute(draft(
            line("M", "10", "100.00"),
            line("N", "1", "160.00", item_type="TAX"),
            price_mode=mode,
        ))
        assert groups(computed) == {
            "M": ("0", "1000.00", "1000.00", "0.00"),
            "N": ("0", "160.00", "0.00", "160.00"),
        }
        assert computed.total == Decimal("1160.00")


def test_example_4_external_financing_settled_by_credit():
    computed = CD.compute(draft(
        line("F", "1", "1000.00"),
        line("G", "1", "500.00"),
        line("B", "1", "100.00"),
    ))
    totals = computed.totals_as_json()
    assert groups(computed)["F"] == ("0.16", "1000.00", "1000.00", "160.00")
    assert groups(computed)["G"] == ("0.08", "500.00", "500.00", "40.00")
    assert (totals["total"], totals["vat_settled_by_credit"], totals["payable"]) == (
        "1816.00", "200.00", "1616.00")


def test_example_5_line_amounts_round_half_up():
    computed = CD.compute(draft(
        line("A", "2.5", "0.01"),    # 0.025  -> 0.03 (half-even would give 0.02)
        line("A", "1.005", "1.00"),  # 1.005  -> 1.01 (half-even would give 1.00)
        line("A", "0.125", "0.10"),  # 0.0125 -> 0.01
        line("A", "0.5", "0.01"),    # 0.005  -> 0.01
    ))
    assert [row["amount"] for row in computed.lines_as_json()] == ["0.03", "1.01", "0.01", "0.01"]
    assert computed.totals_as_json()["total"] == "1.06"


def test_example_6_vat_rounds_per_group_not_per_line():
    # Three lines of 0.03: per line 0.0048 VAT would round to 0.00 three times; per group the
    # 0.09 base carries 0.0144 VAT -> 0.01.
    computed = CD.compute(draft(*[line("B", "1", "0.03")] * 3))
    assert groups(computed)["B"] == ("0.16", "0.09", "0.09", "0.01")
    assert computed.total == Decimal("0.10")


def test_example_7_vat_below_and_above_half():
    # 25.03 x 0.16 = 4.0048 -> 4.00; 25.04 x 0.16 = 4.0064 -> 4.01
    assert groups(CD.compute(draft(line("B", "2.5", "10.01"))))["B"][3] == "4.00"
    assert groups(CD.compute(draft(line("B", "1", "25.04"))))["B"][3] == "4.01"


def test_example_8_usd_equivalent():
    computed = CD.compute(draft(
        line("B", "3", "1000.00"), line("C", "2", "250.50"), line("A", "1", "100"),
        exchange=Exchange(currency="USD", rate=Decimal("2850.5"), date="2025-03-01"),
    ))
    # 4121.08 / 2850.5 = 1.44574... -> 1.45
    assert computed.exchange_as_json() == {
        "currency": "USD", "rate": "2850.5", "date": "2025-03-01", "total_foreign": "1.45"}


def test_example_9_usd_equivalent_rounds_half_up():
    computed = CD.compute(draft(
        line("A", "1", "100.05"),
        exchange=Exchange(currency="USD", rate=Decimal("10"), date="2025-03-01"),
    ))
    assert computed.exchange_as_json()["total_foreign"] == "10.01"  # 10.005


def test_groups_listed_only_when_present_and_sorted():
    computed = CD.compute(draft(line("K"), line("B"), line("A"), line("B")))
    assert [g["group"] for g in computed.totals_as_json()["groups"]] == ["A", "B", "K"]


def test_canonical_lines_json():
    computed = CD.compute(draft(line("B", "2.500", "10", code="SKU-1", description="Riz 25 kg")))
    assert computed.lines_as_json() == [{
        "index": 0, "description": "Riz 25 kg", "code": "SKU-1", "item_type": "BIE",
        "tax_group": "B", "quantity": "2.5", "unit_price": "10.00", "amount": "25.00",
    }]


def test_lines_digest_ignores_how_numbers_were_written():
    a = CD.compute(draft(line("B", "2.500", "10")))
    b = CD.compute(draft(line("B", "2.5", "10.00")))
    assert a.lines_digest() == b.lines_digest()
    c = CD.compute(draft(line("B", "2.5", "10.01")))
    assert a.lines_digest() != c.lines_digest()
