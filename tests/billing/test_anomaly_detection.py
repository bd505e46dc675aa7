"""The pure detection math on synthetic series: flat, linear growth, one spike, a weekly cycle, σ = 0
then a jump, too little history, and the robust method against an earlier outlier."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from stalela.billing import anomaly

START = date(2026, 3, 2)  # a Monday
T = Decimal("2.5")


def series(values) -> dict[date, Decimal]:
    return {START + timedelta(days=i): Decimal(v) for i, v in enumerate(values)}


def last_day(values) -> date:
    return START + timedelta(days=len(values) - 1)


def flagged(values, method="zscore", threshold=T) -> list[date]:
    return [v.day for v in anomaly.scan(series(values), START, last_day(values), threshold=threshold,
                                          method=method)]


def noisy(n: int, level: int = 100) -> list[int]:
    """A deterministic ±2 wiggle around ``level``."""
    return [level + (i * 7 % 5) - 2 for i in range(n)]


@pytest.mark.parametrize("method", anomaly.METHODS)
def test_a_flat_series_is_never_flagged(method):
    assert flagged([100] * 60, method) == []


@pytest.mark.parametrize("method", ["zscore"])
def test_linear_growth_is_not_an_anomaly(method):
    # Whatever the slope, the next point of a line is (n+1)/2 / sqrt((n²−1)/12) < 2 σ above the mean.
    assert flagged([50 + 3 * i for i in range(90)], method) == []
    assert flagged([1000 + 250 * i for i in range(90)], method) == []


def test_linear_growth_under_mad_with_a_noisy_level():
    # Slow growth against a level: the 5 % floor absorbs it.
    assert flagged([1000 + i for i in range(90)], "mad") == []


@pytest.mark.parametrize("method", anomaly.METHODS)
def test_one_spike_is_flagged_once_on_its_day(method):
    values = noisy(50)
    values[40] = 400
    days = flagged(values, method)
    assert days == [START + timedelta(days=40)]
    verdict = anomaly.detect(series(values), days[0], threshold=T, method=method)
    assert verdict.anomalous and verdict.observed == 400 and verdict.history_days == 28
    assert verdict.baseline == Decimal("100.000000") if method == "mad" else abs(verdict.baseline - 100) < 1


@pytest.mark.parametrize("method", anomaly.METHODS)
def test_a_weekly_cycle_with_four_weeks_of_history_is_not_flagged(method):
    # Weekdays 100 (±2), weekends 20: the quiet weekend is a drop (never a cost anomaly) and the
    # return on Monday is no rise over a baseline of four whole weeks.
    values = [20 if (i % 7) in (5, 6) else 100 + (i % 3) - 1 for i in range(28 + 8 * 7)]
    assert [d for d in flagged(values, method) if (d - START).days >= 28] == []


def test_sigma_zero_then_a_small_wiggle_is_not_flagged_a_jump_is():
    values = [100] * 30 + [110]
    verdict = anomaly.detect(series(values), last_day(values), threshold=T)
    assert verdict.spread == 5  # the floor: 5 % of 100 (σ = 0)
    assert verdict.score == 2 and not verdict.anomalous  # finite, below 2.5
    values[-1] = 200
    verdict = anomaly.detect(series(values), last_day(values), threshold=T)
    assert verdict.score == 20 and verdict.anomalous


def test_the_floor_is_at_least_one_unit():
    values = [2] * 10 + [4]
    verdict = anomaly.detect(series(values), last_day(values), threshold=T)
    assert verdict.spread == 1 and verdict.score == 2 and not verdict.anomalous
    values[-1] = 5
    assert anomaly.detect(series(values), last_day(values), threshold=T).anomalous


def test_fewer_than_seven_days_of_history_give_no_verdict():
    values = [10, 10, 10, 10, 10, 10, 1000]
    assert anomaly.detect(series(values), last_day(values), threshold=T) is None  # 6 days before it
    values = [10] * 7 + [1000]
    assert anomaly.detect(series(values), last_day(values), threshold=T).anomalous


def test_history_starts_at_the_first_day_with_usage_and_gaps_after_it_are_zeros():
    data = {START + timedelta(days=i): Decimal(100) for i in range(0, 10, 2)}  # every other day
    day = START + timedelta(days=10)
    assert anomaly.window(data, day) == [Decimal(100), Decimal(0)] * 5
    # Days before the start are not zeros: only the 4 days from the start (the 28-day window reaches further).
    late = {START + timedelta(days=30 + i): Decimal(5) for i in range(4)}
    assert anomaly.window(late, START + timedelta(days=34)) == [Decimal(5)] * 4
    assert anomaly.detect(late, START + timedelta(days=34), threshold=T) is None
    # The caller may name the start when the series given does not reach back to it.
    assert len(anomaly.window(late, START + timedelta(days=34), first_day=START)) == 28


def test_the_window_is_the_28_days_before_excluding_the_day():
    values = [1000] * 5 + [100] * 28 + [100]
    history = anomaly.window(series(values), last_day(values))
    assert history == [Decimal(100)] * 28


def test_mad_is_robust_to_an_earlier_outlier_where_zscore_is_not():
    values = noisy(40)
    values[20] = 5000  # an earlier outlier inside the window
    values[35] = 160
    day = START + timedelta(days=35)
    z = anomaly.detect(series(values), day, threshold=T, method="zscore")
    mad = anomaly.detect(series(values), day, threshold=T, method="mad")
    assert not z.anomalous  # the outlier inflated σ
    assert mad.anomalous and mad.baseline == 100
    assert flagged(values, "mad") == [START + timedelta(days=20), day]


def test_drops_are_not_cost_anomalies():
    values = [100] * 30 + [0]
    verdict = anomaly.detect(series(values), last_day(values), threshold=T, method="mad")
    assert verdict.score == -20 and not verdict.anomalous


def test_population_standard_deviation_and_exact_decimals():
    history = [Decimal(v) for v in (2, 4, 4, 4, 5, 5, 7, 9)]  # the textbook set: mean 5, population σ 2
    verdict = anomaly.judge(history, Decimal(11), START, threshold=T)
    assert (verdict.baseline, verdict.spread, verdict.score) == (5, 2, 3)
    fractional = [Decimal("0.000001") * v for v in (1, 2, 3, 4, 5, 6, 7)]  # cpu_seconds' scale
    verdict = anomaly.judge(fractional, Decimal("0.5"), START, threshold=T)
    assert verdict.spread == 1 and isinstance(verdict.score, Decimal)


def test_the_threshold_is_strict_and_an_unknown_method_refused():
    history = [Decimal(100)] * 7
    assert not anomaly.judge(history, Decimal("112.5"), START, threshold=T).anomalous  # score exactly 2.5
    assert anomaly.judge(history, Decimal("112.6"), START, threshold=T).anomalous
    with pytest.raises(ValueError):
        anomaly.judge(history, Decimal(1), START, threshold=T, method="iqr")
