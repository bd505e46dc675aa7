"""``stalela billing anomalies detect``: a day's cost anomaly detection by hand (docs/billing.md)."""
from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta, timezone
from typing import Any, Optional

import typer

from stalela.cli.output import emit, note, usage
from stalela.config import Settings, get_settings

anomalies_app = typer.Typer(help="Cost anomalies: daily detection over the usage aggregates", no_args_is_help=True)


def register(billing_app: typer.Typer) -> None:
    """Add ``anomalies`` to the ``stalela billing`` sub-app."""
    billing_app.add_typer(anomalies_app, name="anomalies")


async def _detect(settings: Settings, day: date, tenant: str | None) -> list[dict[str, Any]]:
    from stalela.billing import anomaly_tasks
    from stalela.db.session import Database

    db = Database.from_settings(settings)
    try:
        return await anomaly_tasks.detect_all(db, settings, day, tenant_id=tenant)
    finally:
        await db.dispose()


@anomalies_app.command("detect")
def detect(
    day: Optional[str] = typer.Option(None, "--day", help="YYYY-MM-DD (UTC); default yesterday"),
    tenant: Optional[str] = typer.Option(None, "--tenant", help="Only this tenant"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Judge the day's usage of every tenant (or one) and store its anomalies. Idempotent: a re-run
    stores, sends and counts nothing more."""
    try:
        when = date.fromisoformat(day) if day else datetime.now(timezone.utc).date() - timedelta(days=1)
    except ValueError:
        usage(f"--day: {day!r} is not a YYYY-MM-DD date")
    stored = asyncio.run(_detect(get_settings(), when, tenant))
    emit({"day": when.isoformat(), "data": stored}, as_json,
         [f"{a['tenant_id']}  {a['resource']:20} observed {a['observed']} baseline {a['baseline']} "
          f"score {a['score']} impact {a['impact_eur']}  {a['id']}" for a in stored])
    if not as_json:
        note(f"{when.isoformat()}: {len(stored)} new anomal{'y' if len(stored) == 1 else 'ies'}", markup=False)
