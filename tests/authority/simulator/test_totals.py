"""The simulator's own arithmetic, without a server."""
from __future__ import annotations

from decimal import ROUND_HALF_UP
from decimal import Decimal as D

from stalela.authority.simulator.totals import compute_totals, totals_to_wire


def wire(lines, mode="ht"):
    return totals_to_wire(compute_totals([(g, D(q), D(p)) for g, q, p in lines], mode))


def test_ht_rounds_each_line_half_up_then_vat_per_group():
    out = wire([("B", "2", "50000.00"), ("C", "1", "12345.67"), ("A", "3", "0.335")])
    assert out["totals"] == {
        "A": {"amount": "1.01", "base": "1.01", "vat": "0.00"},  # 1.005 -> 1.01, not 1.00
        "B": {"amount": "100000.00", "base": "100000.00", "vat": "16000.00"},
        "C": {"amount": "12345.67", "base": "12345.67", "vat": "987.65"},
    }
    assert out["total"] == "129334.33"
    assert out["vtotal"] == "16987.65"


def test_ttc_extracts_vat_from_the_amount():
    out = wire([("B", "1", "109400.00"), ("C", "1", "108.00")], "ttc")
    assert out["totals"]["B"] == {"amount": "109400.00", "base": "94310.34", "vat": "15089.66"}
    assert out["totals"]["C"] == {"amount": "108.00", "base": "100.00", "vat": "8.00"}
    assert out["total"] == "109508.00"
    assert out["vtotal"] == "15097.66"


def test_groups_m_and_n_in_either_mode():
    for mode in ("ht", "ttc"):
        out = wire([("M", "2", "1000"), ("N", "1", "160")], mode)
        assert out["totals"]["M"] == {"amount": "2000.00", "base": "2000.00", "vat": "0.00"}
        assert out["totals"]["N"] == {"amount": "160.00", "base": "0.00", "vat": "160.00"}
        assert (out["total"], out["vtotal"]) == ("2160.00", "160.00")


def test_groups_f_and_g_carry_vat_like_b_and_c():
    ht = wire([("F", "1", "1000"), ("G", "1", "500")])
    assert ht["totals"]["F"]["vat"] == "160.00" and ht["totals"]["G"]["vat"] == "40.00"
    assert ht["total"] == "1700.00"
    ttc = wire([("F", "1", "1160"), ("G", "1", "540")], "ttc")
    assert ttc["totals"]["F"] == {"amount": "1160.00", "base": "1000.00", "vat": "160.00"}
    assert ttc["totals"]["G"] == {"amount": "540.00", "base": "500.00", "vat": "40.00"}
    assert ttc["total"] == "1700.00" and ttc["vtotal"] == "200.00"


def test_no_vat_groups_and_small_ttc_rounding():
    out = wire([("D", "1", "10"), ("E", "1", "10"), ("L", "1", "10"), ("B", "1", "0.50")], "ttc")
    for g in "DEL":
        assert out["totals"][g] == {"amount": "10.00", "base": "10.00", "vat": "0.00"}
    assert out["totals"]["B"] == {"amount": "0.50", "base": "0.43", "vat": "0.07"}


def test_large_values_keep_every_digit():
    out = wire([("A", "999999999.999", "9999999.99")])
    exact = D("999999999.999") * D("9999999.99")
    assert out["total"] == str(exact.quantize(D("0.01"), ROUND_HALF_UP))
