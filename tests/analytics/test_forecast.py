"""The forecast: the methods on series with a known answer, the backtest's MAE and MAPE, and the route over a
synthetic history written as sealing writes it (on SQLite and PostgreSQL)."""
from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from stalela.analytics import forecast as fc
from stalela.analytics.periods import add_months, month_end, month_pieces, periods, split
from stalela.fiscal.invoices.repository import SalesTallyRepository
from stalela.fiscal.invoices.tallies import Tallies
from stalela.tenancy.context import bind_tenant
from tests.analytics.conftest import get


def test_a_straight_line_is_continued_exactly_and_backtests_without_error():
    series = [100_000 + 25_000 * i for i in range(10)]
    assert fc.predict(series, "trend", 6, 1) == 350_000
    assert fc.predict(series, "trend", 6, 2) == 375_000
    test = fc.backtest(series, "trend", 6, 2, 6)
    assert len(test.points) == 6 and test.mae == 0 and test.mape == 0.0


def test_the_trend_is_least_squares_over_the_window_only_and_never_negative():
    # An outlier outside the window changes nothing; inside, the line through (0,10),(1,20),(2,60): slope 25.
    assert fc.predict([999_999, 10, 20, 60], "trend", 3, 1) == round(30 + 25 * 2)
    assert fc.predict([500, 300, 100], "trend", 3, 2) == 0  # -300 would be negative
    assert fc.predict([700], "trend", 6, 2) == 700  # one month: that month again
    assert fc.predict([], "trend", 6, 2) is None


def test_seasonal_naive_takes_the_same_month_a_year_before():
    series = list(range(1, 15))  # 14 months, oldest first
    # Horizon 2 after the 14th month is the 16th: a year before is the 4th (value 4).
    assert fc.predict(series, "seasonal", 6, 2) == 4
    assert fc.predict(series[:10], "seasonal", 6, 2) is None  # less than a year of history


def test_mae_and_mape_on_a_known_error():
    test = fc.Backtest([(0, 100, 90), (1, 200, 230), (2, 0, 10)])
    assert test.mae == round((10 + 30 + 10) / 3)
    assert test.mape == round((0.1 + 0.15) / 2, 4)  # the month with no revenue is left out of MAPE
    assert fc.Backtest().mae is None and fc.Backtest().mape is None
    with pytest.raises(ValueError):
        fc.predict([1, 2], "arima", 6, 1)


def test_a_range_splits_into_whole_months_and_the_days_around_them():
    rng = random.Random(7)
    for _ in range(3000):
        first = date(2024, 1, 1) + timedelta(days=rng.randrange(900))
        last = first + timedelta(days=rng.randrange(800))
        days, months = split(first, last)
        covered = [d for a, b in days for d in _days(a, b)]
        if months is not None:
            covered += _days(months[0], month_end(months[1]))
            assert all(m.day == 1 for m in months) and months[0] >= first and month_end(months[1]) <= last
        assert sorted(covered) == _days(first, last), (first, last)  # every day once
    assert split(date(2026, 1, 1), date(2026, 1, 31)) == ([], (date(2026, 1, 1), date(2026, 1, 1)))
    assert split(date(2026, 1, 2), date(2026, 2, 27)) == ([(date(2026, 1, 2), date(2026, 2, 27))], None)


def test_months_are_read_as_the_fewest_years_quarters_and_months():
    span = {"m": 1, "q": 3, "y": 12}
    for first in (date(2024, m, 1) for m in range(1, 13)):
        for length in range(1, 40):
            last = add_months(first, length - 1)
            pieces = month_pieces(first, last)
            months = [add_months(p, i) for g, p in pieces for i in range(span[g])]
            assert months == [add_months(first, i) for i in range(length)], (first, length)  # each once, in order
    assert month_pieces(date(2025, 12, 1), date(2026, 12, 31)) == [("m", date(2025, 12, 1)), ("y", date(2026, 1, 1))]


def _days(a: date, b: date) -> list[date]:
    return [a + timedelta(days=i) for i in range((b - a).days + 1)]


def test_periods_cover_a_range_once():
    spans = list(periods(date(2026, 1, 30), date(2026, 3, 2), "month"))
    assert spans == [(date(2026, 1, 30), date(2026, 1, 31)), (date(2026, 2, 1), date(2026, 2, 28)),
                     (date(2026, 3, 1), date(2026, 3, 2))]
    assert add_months(date(2026, 1, 31), -13) == date(2024, 12, 1)


async def _history(db, tenant_id: str, outlet_id: str, months: dict[date, int], currency: str = "CDF") -> None:
    """Monthly revenue written as sealing writes it: one invoice's rows on the month's 15th, and its month's."""
    tallies = Tallies()
    for m, cents in months.items():
        tallies.add(tenant_id=tenant_id, outlet_id=outlet_id, day=m.replace(day=15), currency=currency, type="FV",
                    credit=False, totals={"groups": [], "total": f"{cents / 100:.2f}"}, buyer_subject=None,
                    invoice_id=None, at=datetime(2026, 11, 1, tzinfo=timezone.utc))
    rows = tallies.rows()
    async with db.transaction() as session:
        await bind_tenant(session, tenant_id)
        await SalesTallyRepository(session).add(rows)


async def test_the_route_forecasts_next_month_from_a_known_history(client, shop, db):
    tenant, headers, (a, _) = shop  # the clock: 20 November 2026
    # Twelve months to October 2026 rising by 1,000.00 a month, from 10,000.00; November so far 3,000.00.
    months = {add_months(date(2026, 10, 1), -i): 1_000_000 + 100_000 * (11 - i) for i in range(12)}
    months[date(2026, 11, 1)] = 300_000
    await _history(db, tenant["id"], a["id"], months)
    await _history(db, tenant["id"], a["id"], {date(2026, 9, 1): 5_000, date(2026, 10, 1): 7_000}, currency="USD")
    body = await get(client, headers, "forecast")
    assert (body["month"], body["method"], body["window"], body["horizon"]) == ("2026-12", "trend", 6, 2)
    cdf, usd = body["data"]  # per currency, never added together
    assert cdf["currency"] == "CDF" and cdf["forecast"] == "23000.00"  # October's 21,000.00 plus two months' 1,000.00
    assert cdf["month_to_date"] == "3000.00" and cdf["history"][-1] == {"month": "2026-10", "revenue": "21000.00"}
    assert cdf["backtest"]["months"] == 6 and cdf["backtest"]["mae"] == "0.00" and cdf["backtest"]["mape"] == 0.0
    assert usd["currency"] == "USD" and usd["forecast"] == "110.00"  # 50, 70: +20 a month
    assert [h["month"] for h in usd["history"]] == ["2026-09", "2026-10"]  # from its first month with sales

    seasonal = await get(client, headers, "forecast", method="seasonal", months=3)
    assert seasonal["data"][0]["forecast"] == "11000.00"  # December 2025
    assert seasonal["data"][1]["forecast"] is None  # the dollars have no December before: no seasonal forecast
    csv = (await client.get("/v1/analytics/forecast", params={"format": "csv"}, headers=headers)).text.splitlines()
    assert csv[0] == "currency,month,kind,revenue,predicted" and "CDF,2026-12,forecast,,23000.00" in csv


async def test_the_backtest_measures_a_real_error(client, shop, db):
    tenant, headers, (a, _) = shop
    # Flat at 10,000.00 but a one-off 16,000.00 in July: the trend is misled around it.
    months = {add_months(date(2026, 10, 1), -i): 1_000_000 for i in range(12)}
    months[date(2026, 7, 1)] = 1_600_000
    await _history(db, tenant["id"], a["id"], months)
    body = (await get(client, headers, "forecast", months=3))["data"][0]
    points = body["backtest"]["points"]
    errors = [abs(Decimal(p["actual"]) - Decimal(p["predicted"])) for p in points]
    assert len(points) == 6 and abs(Decimal(body["backtest"]["mae"]) - sum(errors) / len(errors)) <= Decimal("0.01")
    assert Decimal(body["backtest"]["mae"]) > 0
    actual = [Decimal(p["actual"]) for p in points]
    mape = sum(e / x for e, x in zip(errors, actual)) / len(points)
    assert abs(Decimal(str(body["backtest"]["mape"])) - mape) < Decimal("0.0001")
