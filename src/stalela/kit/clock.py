from __future__ import annotations

from datetime import datetime, timezone


def rfc3339(moment: datetime) -> str:
    """UTC, millisecond precision, 'Z' suffix: the one timestamp format inside seals."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
