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


def split(first: date, last: date) -> tuple[list[tuple[date, date]], tuple[date, date] | None]:
    """[first, last] as the whole months inside it (first days of the first and last such month, or None) and
    the days around them: the month rows are read for the first, the day rows for the rest."""
    m1 = first if first.day == 1 else next_month(first)  # the first whole month
    after = next_month(last) if last == month_end(last) else month_start(last)  # the day after the whole months
    if after <= m1:
        return [(first, last)], None
    days = [(a, b) for a, b in ((first, m1 - ONE_DAY), (after, last)) if a <= b]
    return days, (m1, add_months(after, -1))


def month_pieces(first: date, last: date) -> list[tuple[str, date]]:
    """The months of [first, last] (first days of months, both included) as the fewest whole years,
    quarters and months, (grain, first day) each, covering each month once (the buyers' rows)."""
    out, m = [], month_start(first)
    while m <= last:
        if m.month == 1 and add_months(m, 11) <= last:
            out.append(("y", m))
            m = add_months(m, 12)
        elif m.month % 3 == 1 and add_months(m, 2) <= last:
            out.append(("q", m))
            m = add_months(m, 3)
        else:
            out.append(("m", m))
            m = add_months(m, 1)
    return out
