"""``stalela retention run [--dry-run]``: the retention run on demand (the scheduler does it daily)."""
from __future__ import annotations

import asyncio
from typing import Any, Optional

import typer

from stalela.cli.output import EXIT_FAILED, emit
from stalela.config import Settings, get_settings

retention_app = typer.Typer(help="Retention: purge what is past its rule (docs/privacy-retention.md)",
                            no_args_is_help=True)


async def _run(settings: Settings, dry_run: bool, tenants: list[str] | None) -> dict[str, Any]:
    from stalela.db.session import Database
    from stalela.privacy import retention_service

    db = Database.from_settings(settings)
    try:
        return await retention_service.run_all(db, settings, dry_run=dry_run, actor="operator:cli",
                                               tenant_ids=tenants)
    finally:
        await db.dispose()


@retention_app.command("run")
def run(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what a run now would mark, purge and unmark."),
    tenant: Optional[list[str]] = typer.Option(None, "--tenant", help="Only this tenant (repeatable)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Mark what is past its rule; purge what was marked a grace period ago and still is. Idempotent."""
    from stalela.observability.runtime import configure_logs

    settings = get_settings()
    configure_logs(settings)  # log lines (JSON, scrubbed) go to stderr; stdout is the answer
    result = asyncio.run(_run(settings, dry_run, tenant or None))
    verb, lines = "would" if dry_run else "did", []
    for tenant_id, outcome in result["tenants"].items():
        for entry in outcome["purgers"]:
            counts = {w: entry[w]["count"] for w in ("mark", "purge", "unmark")}
            if any(counts.values()):
                lines.append(f"{tenant_id}  {entry['purger']:28} {verb} mark {counts['mark']}, purge "
                             f"{counts['purge']}, unmark {counts['unmark']}")
    totals = result["totals"]
    failed = f"; FAILED: {', '.join(result['failed'])}" if result["failed"] else ""
    lines.append(f"{len(result['tenants'])} tenant(s): {verb} mark {totals['marked']}, purge {totals['purged']}, "
                 f"unmark {totals['unmarked']}{failed}")
    emit(result, as_json, lines)
    if result["failed"]:
        raise typer.Exit(EXIT_FAILED)
