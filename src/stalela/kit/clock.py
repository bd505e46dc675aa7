from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Callable, Iterator


def rfc3339(moment: datetime) -> str:
    """UTC, millisecond precision, 'Z' suffix: the one timestamp format inside seals."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class SwappableClock:
    """A domain's "now", which tests replace (``use``) to walk past days of retention or hours of a
    link in a millisecond. One instance per domain, so replacing one clock moves no other."""

    def __init__(self) -> None:
        self._now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)

    def now(self) -> datetime:
        return self._now()

    @contextmanager
    def use(self, clock: Callable[[], datetime]) -> Iterator[None]:
        previous, self._now = self._now, clock
        try:
            yield
        finally:
            self._now = previous
