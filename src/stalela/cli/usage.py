"""``stalela usage aggregate [--tenant T] [--day D | --from D --to D]``: refresh the daily usage aggregates
by hand (the worker does it every ``usage_aggregation_seconds``). Idempotent: a re-run writes identical rows."""
from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta, timezone
from typing import Optional

import typer

from stalela.cli.output import emit
from stalela.config import Settings, get_settings

usage_app = typer.Typer(help="Usage metering (docs/billing.md)", no_args_is_help=True)


async def _run(settings: Settings, tenants: list[str] | None, start: date | None, end: date | None) -> dict[str, int]:
    from stalela.billing.usage_tasks import aggregate_all
    from stalela.db.session import Database

    db = Database.from_settings(settings)
    try:
        return await aggregate_all(db, tenants, start, end)
    finally:
        await db.dispose()


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a YYYY-MM-DD date", param_hint=option) from None


@usage_app.command("aggregate")
def aggregate(
    tenant: Optional[list[str]] = typer.Option(None, "--tenant", help="Only this tenant (repeatable)."),
    day: Optional[str] = typer.Option(None, "--day", help="Recompute this UTC day (YYYY-MM-DD)."),
    day_from: Optional[str] = typer.Option(None, "--from", help="Recompute from this UTC day, inclusive."),
    day_to: Optional[str] = typer.Option(None, "--to", help="...through this UTC day, inclusive."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Without a day: the days that got events or voids since the last run. With --day or --from/--to: every
    day of the range that has usage, recomputed from the events."""
    from stalela.observability.runtime import configure_logs

    settings = get_settings()
    configure_logs(settings)
    if day is not None and (day_from or day_to):
        raise typer.BadParameter("give --day or --from/--to, not both")
    start = _day(day or day_from, "--from")
    last = _day(day or day_to, "--to")
    if (start is None) != (last is None):
        start = start or last
        last = last or datetime.now(timezone.utc).date()
    end = last + timedelta(days=1) if last else None
    written = asyncio.run(_run(settings, tenant or None, start, end))
    emit({"tenants": written, "rows": sum(written.values())}, as_json,
         f"{len(written)} tenant(s): {sum(written.values())} daily row(s) written")
