"""The time exports live by: link validity, expiry, the sweep. Tests replace it (``use_clock``) to walk
past the 72 hours of a link in a millisecond, as the webhooks' clock does for their retries."""
from __future__ import annotations

from stalela.kit.clock import SwappableClock

_clock = SwappableClock()
now = _clock.now
use_clock = _clock.use
