"""The billing worker loop: every ``billing_interval_seconds``, yesterday's anomaly detection, the drafts
of the period that ended, and the finalisation of drafts past their grace. Every step is idempotent
(unique bills, Idempotency-Keys on seals), so several workers may run it."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from stalela.billing import anomaly_tasks, bill_tasks
from stalela.billing.bill_lines import period_of, previous_period
from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.db.session import Database
from stalela.observability.logging import get_logger

log = get_logger("stalela.billing.cycle")


async def run_once(db: Database, settings: Settings, now: datetime | None = None) -> dict[str, bill_tasks.CloseReport]:
    now = now or utcnow()
    # (a) anomaly detection for yesterday (UTC). Hourly runs re-judge it as its aggregates fill in: a
    # partial day only looks lower (never a false rise), and what was stored once is never stored again.
    try:
        await anomaly_tasks.detect_all(db, settings, (now - timedelta(days=1)).date())
    except Exception:  # the bills must not wait on it
        log.exception("anomaly_detection_failed")
    ended = previous_period(period_of(now))
    drafted = await bill_tasks.close_period(db, settings, ended, now=now)  # (b), and (c) for that period
    due = await bill_tasks.finalize_due(db, settings, now)  # (c) any other open draft
    for report in (drafted, due):
        if report.failed:
            log.warning("billing_cycle_failures", period=report.period, failed=len(report.failed))
    return {"drafted": drafted, "finalized": due}


async def billing_cycle(db: Database, settings: Settings) -> None:
    while True:
        try:
            await run_once(db, settings)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("billing_cycle_failed")
        await asyncio.sleep(settings.billing_interval_seconds)
