"""Business days into periods (day, ISO week from Monday, calendar month), clipped to the asked range. Pure."""
from __future__ import annotations

from datetime import date, timedelta
from typing import Iterator

INTERVALS = ("day", "week", "month")
ONE_DAY = timedelta(days=1)


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def month_end(day: date) -> date:
    return next_month(day) - ONE_DAY


def add_months(day: date, months: int) -> date:
    """The first day of the month ``months`` after (or before) ``day``'s."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def start_of(day: date, interval: str) -> date:
    if interval == "day":
        return day
    if interval == "week":
        return day - timedelta(days=day.weekday())
    return month_start(day)


def end_of(start: date, interval: str) -> date:
    if interval == "day":
        return start
    if interval == "week":
        return start + timedelta(days=6)
    return month_end(start)


def periods(first: date, last: date, interval: str) -> Iterator[tuple[date, date]]:
    """(start, end) of every period meeting [first, last], each clipped to it: they cover it exactly once."""
    start = start_of(first, interval)
    while start <= last:
        end = end_of(start, interval)
        yield max(start, first), min(end, last)
        start = end + ONE_DAY
