"""The time exports live by: link validity, expiry, the sweep. Tests replace it (``use_clock``) to walk
past the 72 hours of a link in a millisecond, as the webhooks' clock does for their retries."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime
from typing import Callable, Iterator

from stalela.db.base import utcnow

_now: Callable[[], datetime] = utcnow


def now() -> datetime:
    return _now()


@contextmanager
def use_clock(clock: Callable[[], datetime]) -> Iterator[None]:
    global _now
    previous, _now = _now, clock
    try:
        yield
    finally:
        _now = previous
