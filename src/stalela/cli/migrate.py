"""``stalela migrate``: the control plane, then every dedicated database, with progress; ``--status`` reads
each database's revision without migrating. Exit 1 when a database failed (run again to finish)."""
from __future__ import annotations

import asyncio
import json

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from stalela.config import get_settings

console = Console(stderr=True)


def migrate(status: bool = typer.Option(False, "--status", help="Report each database's revision; migrate nothing"),
            as_json: bool = typer.Option(False, "--json")) -> None:
    """Apply database migrations up to the latest revision: the control plane and every dedicated database."""
    from stalela.migrations import fleet, revision_text

    settings = get_settings()
    if status:
        result = asyncio.run(fleet.fleet_status(settings))
        if as_json:
            print(json.dumps([t.as_json() for t in result.targets], indent=2))
        else:
            for target in result.targets:
                state = "at head" if target.at_head else target.outcome
                detail = f"  {target.error}" if target.error else ""
                print(f"{target.label}  {target.name}  {revision_text(target.before) or '-'}  {state}{detail}")
        raise typer.Exit(0 if all(t.at_head for t in result.targets) else 1)

    # A terminal gets a progress bar; a log (CI, systemd, make) one plain line per database as it is done.
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console, transient=True) if console.is_terminal and not as_json else None
    task = bar.add_task("migrating", total=None) if bar else None

    def planned(plan) -> None:  # noqa: ANN001
        if bar:
            bar.update(task, total=len(plan.targets), completed=1)

    def done(target) -> None:  # noqa: ANN001
        if as_json:
            return
        if bar:
            bar.console.print(target.line(), highlight=False, markup=False, soft_wrap=True)
            bar.advance(task)
        else:
            console.print(target.line(), highlight=False, markup=False, soft_wrap=True)

    if bar:
        bar.start()
    try:
        result = asyncio.run(fleet.migrate_fleet(settings, on_target=done, on_plan=planned))
    finally:
        if bar:
            bar.stop()
    failed = result.failed
    if as_json:
        print(json.dumps([t.as_json() for t in result.targets], indent=2))
    elif failed:
        console.print(f"[red]{len(failed)} of {len(result.targets)} database(s) failed[/red]; run `stalela migrate` "
                      "again once fixed (finished databases are skipped)")
    else:
        console.print(f"migrations applied ({len(result.targets)} database(s) at head)")
    raise typer.Exit(1 if failed else 0)
