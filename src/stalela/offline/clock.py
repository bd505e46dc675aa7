"""The time offline sealing reads where a test must move it (a registration nonce's 60 seconds).

Fiscal times (a block's allocation, a credential's ``nbf``) are the database clock's ``utcnow`` as in
online sealing; only the windows a test has to walk past ask this clock."""
from __future__ import annotations

from datetime import datetime

from stalela.kit.clock import SwappableClock

clock = SwappableClock()


def now() -> datetime:
    return clock.now()
