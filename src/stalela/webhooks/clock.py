"""The time webhooks schedule by: retries (5 s ... 24 h), leases, the 5-day disable rule, secret expiry.

Everything in the package asks ``now()`` here instead of the system clock, so tests replace the clock
with one they advance by hand (``use_clock``) and walk through days of retries in milliseconds. The
outbox, which wakes a message's delivery up again, waits in real seconds: ``wait(seconds)`` converts
a wait on this clock into that real delay (a test clock answers "at once, then look again").
"""
from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime
from typing import Iterator, Protocol

from stalela.db.base import utcnow


class Clock(Protocol):
    def now(self) -> datetime: ...

    def wait(self, seconds: float) -> float: ...


class SystemClock:
    def now(self) -> datetime:
        return utcnow()

    def wait(self, seconds: float) -> float:
        return max(0.0, seconds)


_clock: Clock = SystemClock()


def now() -> datetime:
    return _clock.now()


def wait(seconds: float) -> float:
    return _clock.wait(seconds)


@contextmanager
def use_clock(clock: Clock) -> Iterator[Clock]:
    global _clock
    previous, _clock = _clock, clock
    try:
        yield clock
    finally:
        _clock = previous
