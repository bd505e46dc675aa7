"""The retention scheduler: the daily run (mark what is past its rule, purge what was marked a grace ago).

Runs in every process with in-process workers (and in `stalela worker`). Each process looks once a
minute whether the run is due; the one whose conditional UPDATE of the schedule row succeeds runs it
(``ScheduleRepository.claim``), the others wait for the next day. A run interrupted half-way is
harmless: it is idempotent, and the next one carries on where it stopped.
"""
from __future__ import annotations

from datetime import timedelta

from stalela.config import Settings
from stalela.db.session import Database
from stalela.kit.periodic import every
from stalela.observability.logging import get_logger
from stalela.privacy import retention_service as service
from stalela.privacy.retention_repository import ScheduleRepository

log = get_logger("stalela.privacy")
DAILY = "daily"
POLL_SECONDS = 60


async def run_if_due(db: Database, settings: Settings) -> dict | None:
    """Claim and do the run if it is due; the run's result, or None when it was not this process's turn."""
    at = service.now()
    async with db.transaction() as session:
        claimed = await ScheduleRepository(session).claim(DAILY, at, timedelta(hours=settings.retention_interval_hours))
    if not claimed:
        return None
    result = await service.run_all(db, settings, at=at)
    async with db.transaction() as session:
        await ScheduleRepository(session).finish(DAILY, service.now(), service.summary(result))
    return result


async def retention_scheduler(db: Database, settings: Settings) -> None:
    await every(POLL_SECONDS, lambda: run_if_due(db, settings), log, "retention_scheduler_failed")
