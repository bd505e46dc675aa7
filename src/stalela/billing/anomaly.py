"""Cost anomaly detection, pure: is one day's usage of one resource far above its own recent past?

No I/O and no floats: quantities, baselines and scores are ``Decimal`` (docs/billing.md, Anomalies).

The rules, each chosen for a reason:

- **Window**: the 28 days before the day, the day itself excluded (a spike must not raise its own
  baseline). 28 is four whole weeks, so a weekly cycle (quiet weekends) sits in the baseline evenly.
- **Start of history**: a resource's history starts at its first day with non-zero usage. Before it
  the resource did not exist for the tenant, so those days are left out, not counted as zeros (a new
  customer must not be judged against weeks of nothing). From the start on, a day without a row in the
  window IS a day of zero usage: the aggregation writes no row for a day without events.
- **Minimum history**: 7 days in the window (one full week); with fewer there is no verdict.
- **Score**: ``(x − baseline) / max(spread, floor)``. Method ``zscore``: baseline = mean, spread =
  the *population* standard deviation of the window (the window is the whole reference, not a sample
  of a larger one; it is also numpy's default, so anyone recomputes the same figure). Method ``mad``
  (robust): baseline = median, spread = 1.4826 × the median absolute deviation (1.4826 makes it
  estimate σ for normal data), so one earlier outlier neither moves the baseline nor widens the spread.
- **Floor**: ``max(1 unit, 5 % of |baseline|)``. A perfectly flat series has σ = 0 and any wiggle would
  score infinity; near-flat ones (storage growing by a few bytes) would score absurdly. The floor says
  what "noise" is at least: one whole unit of the resource, and 5 % of the usual level (daily usage
  naturally moves by a few percent; at threshold 2.5, a flat series must rise by more than 12.5 %,
  and by at least 3 units, to be flagged; 1 % would flag a 2.5 % wiggle). It applies to both methods.
- **Direction**: only rises are anomalies. These are *cost* anomalies: what the tenant must be warned
  of is a bill going up. A drop (to zero, or every weekend) lowers the bill; it may be an outage, but
  that is the business of monitoring, and flagging drops would flag every quiet weekend under ``mad``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Context, Decimal, localcontext
from typing import Literal, Mapping

Method = Literal["zscore", "mad"]
METHODS: tuple[str, ...] = ("zscore", "mad")
WINDOW_DAYS = 28
MIN_HISTORY_DAYS = 7
FLOOR_UNITS = Decimal(1)
FLOOR_FRACTION = Decimal("0.05")
MAD_SCALE = Decimal("1.4826")
# Enough digits for byte-day quantities squared (10^18 bytes² = 36 digits) without rounding.
_CONTEXT = Context(prec=60)
_SCORE = Decimal("0.0001")  # a score is stored with 4 decimals
_QUANTITY = Decimal("0.000001")  # baselines and spreads: the finest resource scale (cpu_seconds: 6)


@dataclass(frozen=True)
class Verdict:
    """The day's figures and whether they are an anomaly. ``spread`` is the one used (after the floor)."""

    day: date
    observed: Decimal
    baseline: Decimal
    spread: Decimal
    score: Decimal
    method: str
    threshold: Decimal
    history_days: int

    @property
    def anomalous(self) -> bool:
        return self.score > self.threshold


def window(series: Mapping[date, Decimal], day: date, first_day: date | None = None) -> list[Decimal]:
    """The history the day is judged against: the 28 days before it from the series' start on, a
    missing day counting as 0. ``first_day`` is the start when ``series`` does not reach back to it."""
    starts = [d for d, q in series.items() if q != 0 and d < day]
    start = min([*starts, *([first_day] if first_day else [])], default=None)
    if start is None:
        return []
    begin = max(start, day - timedelta(days=WINDOW_DAYS))
    return [series.get(begin + timedelta(days=i), Decimal(0)) for i in range((day - begin).days)]


def _median(values: list[Decimal]) -> Decimal:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _mean_stdev(values: list[Decimal]) -> tuple[Decimal, Decimal]:
    mean = sum(values, Decimal(0)) / len(values)
    variance = sum(((v - mean) ** 2 for v in values), Decimal(0)) / len(values)
    return mean, variance.sqrt()


def floor(baseline: Decimal) -> Decimal:
    return max(FLOOR_UNITS, FLOOR_FRACTION * abs(baseline))


def judge(history: list[Decimal], observed: Decimal, day: date, *, threshold: Decimal,
          method: str = "zscore") -> Verdict | None:
    """The verdict on ``observed`` against ``history`` (oldest first); None below 7 days of history."""
    if method not in METHODS:
        raise ValueError(f"unknown anomaly method {method!r}")
    if len(history) < MIN_HISTORY_DAYS:
        return None
    with localcontext(_CONTEXT):
        if method == "mad":
            baseline = _median(history)
            spread = MAD_SCALE * _median([abs(v - baseline) for v in history])
        else:
            baseline, spread = _mean_stdev(history)
        spread = max(spread, floor(baseline))
        score = (observed - baseline) / spread
    return Verdict(day=day, observed=observed, baseline=baseline.quantize(_QUANTITY, context=_CONTEXT),
                   spread=spread.quantize(_QUANTITY, context=_CONTEXT), score=score.quantize(_SCORE, context=_CONTEXT),
                   method=method,
                   threshold=threshold, history_days=len(history))


def detect(series: Mapping[date, Decimal], day: date, *, threshold: Decimal, method: str = "zscore",
           first_day: date | None = None) -> Verdict | None:
    """Judge ``series[day]`` (a missing day is 0) against the window before it."""
    return judge(window(series, day, first_day), series.get(day, Decimal(0)), day, threshold=threshold,
                 method=method)


def scan(series: Mapping[date, Decimal], first: date, last: date, *, threshold: Decimal,
         method: str = "zscore") -> list[Verdict]:
    """Every anomalous day of [first, last], oldest first: what a daily job run on each day would store."""
    out = []
    for offset in range((last - first).days + 1):
        verdict = detect(series, first + timedelta(days=offset), threshold=threshold, method=method)
        if verdict is not None and verdict.anomalous:
            out.append(verdict)
    return out
