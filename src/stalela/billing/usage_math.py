"""Pure arithmetic of usage: UTC days, the digests of event ids, and the time-weighted integral of a
gauge over one day. No I/O: the aggregation, the read path and the tests share these.

Digest rule (docs: billing.md, "recompute a bill"): the ids covered (an event's ``event_id``; a void's
``void:<event_id>``) sorted by code point (they are ASCII, so ``LC_ALL=C sort``), each followed by a
line feed, hashed with SHA-256: ``LC_ALL=C sort ids.txt | sha256sum``.

Gauge rule: a sample holds from its instant until the next sample (the last one before a day carries
into it; the last one of a day holds to its end). A day's quantity is the integral of that step
function over the 24 hours divided by one day: the time-weighted average, in unit-days. It is rounded
once, here (``round_half_even`` to the resource's minor unit), and nowhere else.
"""
from __future__ import annotations

import hashlib
from datetime import date, datetime, time, timedelta, timezone
from typing import Iterable

DAY = timedelta(days=1)
DAY_MICROS = 86_400 * 1_000_000
EMPTY_DIGEST = hashlib.sha256(b"").hexdigest()


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=timezone.utc)


def day_of(moment: datetime) -> date:
    return moment.astimezone(timezone.utc).date()


def days(start: date, end: date) -> list[date]:
    """start <= day < end."""
    return [start + timedelta(days=i) for i in range((end - start).days)]


def void_id(event_id: str) -> str:
    return f"void:{event_id}"


class Digest:
    """SHA-256 of ids fed in sorted order (the caller sorts, or the database does: it may be millions)."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.count = 0

    def add(self, id_: str) -> None:
        self._hash.update(id_.encode() + b"\n")
        self.count += 1

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def digest(ids: Iterable[str]) -> str:
    d = Digest()
    for id_ in sorted(ids):
        d.add(id_)
    return d.hexdigest()


def round_half_even(numerator: int, denominator: int) -> int:
    q, r = divmod(numerator, denominator)
    twice = 2 * r
    if twice > denominator or (twice == denominator and q % 2 == 1):
        q += 1
    return q


def gauge_day(day: date, carry: int | None, samples: list[tuple[datetime, int]]) -> int:
    """The day's time-weighted average in minor units. ``carry``: the value of the last sample before the
    day (None: nothing was measured yet, which counts as 0). ``samples``: the day's, in order (the caller
    breaks ties of one instant by event id: the later id wins)."""
    start = day_start(day)
    total = 0
    value = carry or 0
    at = 0
    for moment, units in samples:
        offset = _micros(moment - start)
        if not 0 <= offset < DAY_MICROS:
            raise ValueError(f"sample at {moment} is not in {day}")
        total += value * (offset - at)
        value, at = units, offset
    total += value * (DAY_MICROS - at)
    return round_half_even(total, DAY_MICROS)


def _micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
