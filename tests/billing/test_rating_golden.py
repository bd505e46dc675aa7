"""Golden vectors of the pure rating: each line rounded once (half-up), the total the sum of lines."""
from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from stalela.billing import rating
from stalela.billing.rating import PriceEntry, RateCardView, Tier
from stalela.billing.rating_schemas import PriceEntryIn

# Lago's documented graduated example (guide/plans/charges/charge-models/graduated): $1 per unit for
# the first 100, $0.50 for the next 100, $0.10 for any further unit; 250 calls cost 155.
LAGO_GRADUATED = PriceEntry(per=D(1), tiers=(Tier(D(100), D(1)), Tier(D(200), D("0.5")), Tier(None, D("0.1"))))


def card(**prices: PriceEntry) -> RateCardView:
    return RateCardView("golden", 3, "EUR", date(2026, 1, 1), prices)


@pytest.mark.parametrize("entry, quantity, amount", [
    # per-unit: 0.10 EUR per 1,000 calls
    (PriceEntry(per=D(1000), unit_price=D("0.10")), D(1_234_567), "123.46"),
    (PriceEntry(per=D(1000), unit_price=D("0.10")), D(1000), "0.10"),
    # graduated, Lago's numbers
    (LAGO_GRADUATED, D(250), "155.00"),
    (LAGO_GRADUATED, D(100), "100.00"),
    (LAGO_GRADUATED, D(201), "150.10"),
    (LAGO_GRADUATED, D(50), "50.00"),
    # allowance: 100,000 free calls, then 0.10 per 1,000
    (PriceEntry(per=D(1000), free=D(100_000), unit_price=D("0.10")), D(50_000), "0.00"),
    (PriceEntry(per=D(1000), free=D(100_000), unit_price=D("0.10")), D(100_000), "0.00"),
    (PriceEntry(per=D(1000), free=D(100_000), unit_price=D("0.10")), D(150_000), "5.00"),
    # Lago's package example (5 per 100 units, first 100 free, 201 units) rated per unit: we prorate
    # (101/100 x 5), where Lago's package model bills whole packages (10.00).
    (PriceEntry(per=D(100), free=D(100), unit_price=D(5)), D(201), "5.05"),
    # an allowance crossing tiers: 150 free covers tier 1 and half of tier 2 (50 x 0.5 + 50 x 0.1)
    (PriceEntry(per=D(1), free=D(150), tiers=LAGO_GRADUATED.tiers), D(250), "30.00"),
    (PriceEntry(per=D(1), free=D(150), tiers=LAGO_GRADUATED.tiers), D(150), "0.00"),
    # fractional quantities: CPU-seconds at 0.04 per CPU-hour; GB-days of storage
    (PriceEntry(per=D(3600), unit_price=D("0.04")), D("1234.5"), "0.01"),
    (PriceEntry(per=D(3600), unit_price=D("0.04")), D("90000.25"), "1.00"),
    (PriceEntry(per=D(10**9), unit_price=D("0.0008")), D("45500000000.5"), "0.04"),
    # 8-decimal prices
    (PriceEntry(per=D(1), unit_price=D("0.00000001")), D(123_456_789), "1.23"),
    # the rounding rule: a tie goes up (half-even would give 0.00 and 0.02)
    (PriceEntry(per=D(1), unit_price=D("0.005")), D(1), "0.01"),
    (PriceEntry(per=D(1), unit_price=D("0.005")), D(5), "0.03"),
    (PriceEntry(per=D(1), unit_price=D("0.00499999")), D(1), "0.00"),
    # zero, and a negative net (a period of voids only) bill nothing
    (PriceEntry(per=D(1000), unit_price=D("0.10")), D(0), "0.00"),
    (LAGO_GRADUATED, D(0), "0.00"),
    (PriceEntry(per=D(1), unit_price=D(1)), D(-3), "0.00"),
])
def test_golden_vectors(entry, quantity, amount):
    line = rating.cost_line(card(r=entry), "r", quantity)
    assert str(line.amount) == amount, line.description
    assert line.billable == max(quantity - entry.free, D(0))
    assert (line.plan_id, line.rate_card_version, line.currency) == ("golden", 3, "EUR")


def test_line_records_the_computation():
    line = rating.cost_line(card(api_calls=PriceEntry(per=D(1000), free=D(100), unit_price=D("0.1"))),
                            "api_calls", D(2100))
    assert line.free == D(100) and line.billable == D(2000) and str(line.amount) == "0.20"
    assert line.description == "2100 api_calls − 100 free: 2000 × 0.1 EUR/1000 = 0.2 → 0.20 EUR"
    assert line.as_json()["rate_card_version"] == 3


def test_exact_cost_is_unrounded_and_the_total_sums_rounded_lines():
    entry = PriceEntry(per=D(1), unit_price=D("0.005"))
    assert rating.cost(entry, D(1)) == D("0.005")
    lines = [rating.cost_line(card(a=entry, b=entry, c=entry), name, D(1)) for name in "abc"]
    assert rating.total(lines) == D("0.03")  # not round(0.015) = 0.02: each line is rounded once
    assert rating.total([]) == D("0.00")


def test_unpriced_resource_costs_nothing_and_says_so():
    line = rating.cost_line(card(), "gpu_seconds", D(10))
    assert line.amount == D("0.00") and "not priced" in line.description


def test_marginal_unit_price():
    c = card(calls=PriceEntry(per=D(1), free=D(150), tiers=LAGO_GRADUATED.tiers),
             api=PriceEntry(per=D(1000), unit_price=D("0.10")))
    assert rating.unit_price_at(c, "calls", D(10)) == 0  # inside the allowance
    assert rating.unit_price_at(c, "calls", D(160)) == D("0.5")
    assert rating.unit_price_at(c, "calls", D(200)) == D("0.1")  # a tier's bound belongs to the next tier
    assert rating.unit_price_at(c, "api", D(5)) == D("0.0001")
    assert rating.unit_price_at(c, "nothing", D(5)) == 0


def test_stored_form_round_trips_and_per_defaults_by_resource():
    entry = PriceEntryIn.model_validate({"free": 100, "tiers": [{"up_to": "1000", "unit_price": "0.02"},
                                                                {"up_to": None, "unit_price": "0.005"}]})
    built = entry.to_entry("invoices_sealed")
    assert built.per == 1 and PriceEntry.from_json("invoices_sealed", built.as_json()) == built
    storage = PriceEntryIn.model_validate({"unit_price": "0.0008"}).to_entry("storage_bytes")
    assert storage.per == D(10**9)
    assert PriceEntry.from_json("storage_bytes", storage.as_json()) == storage


@pytest.mark.parametrize("body", [
    {"unit_price": 0.1},                                             # a float is never exact
    {"unit_price": "0.123456789"},                                   # 9 decimals
    {"unit_price": "-1"},
    {"unit_price": "1", "tiers": [{"up_to": None, "unit_price": "1"}]},  # both ways
    {},                                                              # neither
    {"tiers": [{"up_to": "10", "unit_price": "1"}]},                 # no open end
    {"tiers": [{"up_to": "10", "unit_price": "1"}, {"up_to": "5", "unit_price": "1"},
               {"up_to": None, "unit_price": "1"}]},                 # not ascending
    {"tiers": [{"up_to": None, "unit_price": "1"}, {"up_to": None, "unit_price": "1"}]},
    {"unit_price": "1", "per": "0"},
    {"unit_price": "1", "surprise": True},
])
def test_invalid_price_entries(body):
    with pytest.raises(ValueError):
        PriceEntryIn.model_validate(body)
