"""Next month's revenue per currency, by a simple documented method, and its error on past months. Pure.

The input is a currency's net revenue (sales minus credit notes, integer cents) per complete calendar month,
oldest first. The forecast is for ``horizon`` months after the last complete one (2 for "next month" when
the current month is still running: October's figures are the last complete ones on 20 November, and the
forecast is for December).

Methods (docs/analytics.md, "Forecast"):
- ``trend``: the least-squares straight line through the last ``window`` complete months, read ``horizon``
  months ahead; with one month of history, that month again. Never below zero.
- ``seasonal``: seasonal naive: the same calendar month a year before the target (needs a year of history).

The error is measured by backtesting: each of the last ``tests`` complete months is forecast from the
months that were complete ``horizon`` months before it, with the same method and window, and compared with
what it really was. MAE is the mean absolute error (cents); MAPE the mean of |error| / |actual| over the
months whose actual revenue was not zero (a fraction: 0.12 is 12 %).
"""
from __future__ import annotations

from dataclasses import dataclass, field

METHODS = ("trend", "seasonal")
SEASON = 12


def _trend(history: list[int], window: int, horizon: int) -> int | None:
    ys = history[-window:]
    n = len(ys)
    if n == 0:
        return None
    if n == 1:
        return max(ys[0], 0)
    x_mean = (n - 1) / 2
    y_mean = sum(ys) / n
    slope = sum((x - x_mean) * (y - y_mean) for x, y in enumerate(ys)) / sum((x - x_mean) ** 2 for x in range(n))
    return max(round(y_mean + slope * (n - 1 + horizon - x_mean)), 0)


def _seasonal(history: list[int], horizon: int) -> int | None:
    back = len(history) - 1 + horizon - SEASON  # the target's index, a year before
    return history[back] if 0 <= back < len(history) else None


def predict(history: list[int], method: str, window: int, horizon: int) -> int | None:
    """The revenue ``horizon`` months after the last of ``history``; None when the method has too little."""
    if method == "trend":
        return _trend(history, window, horizon)
    if method == "seasonal":
        return _seasonal(history, horizon)
    raise ValueError(f"unknown method {method!r}")


@dataclass(frozen=True)
class Backtest:
    points: list[tuple[int, int, int]] = field(default_factory=list)  # (index in the series, actual, predicted)

    @property
    def mae(self) -> int | None:
        if not self.points:
            return None
        return round(sum(abs(a - p) for _, a, p in self.points) / len(self.points))

    @property
    def mape(self) -> float | None:
        relative = [abs(a - p) / abs(a) for _, a, p in self.points if a != 0]
        return round(sum(relative) / len(relative), 4) if relative else None


def backtest(series: list[int], method: str, window: int, horizon: int, tests: int) -> Backtest:
    """Forecast each of the last ``tests`` months of ``series`` as it would have been, ``horizon`` months ahead."""
    points = []
    for target in range(max(len(series) - tests, 0), len(series)):
        history = series[:target - horizon + 1] if target - horizon + 1 > 0 else []
        predicted = predict(history, method, window, horizon)
        if predicted is not None and (method != "trend" or len(history) >= 2):
            points.append((target, series[target], predicted))
    return Backtest(points)
