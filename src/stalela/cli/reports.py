"""``stalela report z|x|a|rebuild``: day closes, the open day, accountants' reports, figure repairs."""
from __future__ import annotations

import asyncio
import json
import sys
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import AsyncIterator, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from stalela.config import Settings, get_settings

report_app = typer.Typer(help="Z, X and A reports", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)
FORMATS = ("json", "pdf", "csv", "xlsx")


def _day(value: Optional[str], name: str) -> Optional[date]:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        console.print(f"[red]error[/red] --{name} must be a date like 2026-11-01")
        raise typer.Exit(2) from None


def _format(value: str) -> str:
    if value not in FORMATS:
        console.print(f"[red]error[/red] --format must be one of {', '.join(FORMATS)}")
        raise typer.Exit(2)
    return value


@asynccontextmanager
async def _tenant_session(settings: Settings, tenant_id: str, *, readonly: bool = False) -> AsyncIterator:
    from stalela.db.session import Database
    from stalela.tenancy.context import bind_tenant

    db = Database.from_settings(settings)
    try:
        async with db.transaction(readonly=readonly) as session:
            await bind_tenant(session, tenant_id)
            yield session
    finally:
        await db.dispose()


def _principal(tenant_id: str):  # noqa: ANN202
    from stalela.auth.principal import Principal

    return Principal(kind="api_key", tenant_id=tenant_id)


async def _document(session, report: dict, fmt: str) -> bytes:  # noqa: ANN001
    from stalela.fiscal.reports import formats, service

    if fmt == "json":
        return (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode()
    if fmt == "csv":
        return formats.report_csv(report)
    context = await service.report_context(session, report["tenant_id"], report["outlet_id"])
    return (formats.report_pdf if fmt == "pdf" else formats.report_xlsx)(report, context)


def _write(content: bytes, output: Optional[Path], fmt: str) -> None:
    if output is None:
        if fmt in ("pdf", "xlsx") and sys.stdout.isatty():
            console.print(f"[red]error[/red] give -o FILE for {fmt}")
            raise typer.Exit(2)
        sys.stdout.buffer.write(content)
    else:
        output.write_bytes(content)
        console.print(f"wrote {output} ({len(content)} bytes)")


def _fail(exc: Exception) -> None:
    from stalela.errors import StalelaError

    if isinstance(exc, StalelaError):
        console.print(f"[red]error[/red] {exc.code}: {exc.detail}", highlight=False)
        raise typer.Exit(2) from None
    raise exc


@report_app.command("z")
def report_z(
    tenant: str = typer.Option(..., help="Tenant id"),
    outlet: Optional[str] = typer.Option(None, help="Outlet id: close its day (idempotent)"),
    day: Optional[str] = typer.Option(None, "--day", help="Business day to close (default: today, outlet time)"),
    z_id: Optional[str] = typer.Option(None, "--id", help="Show an existing Z report instead of closing"),
    fmt: str = typer.Option("json", "--format", help="json | pdf | csv | xlsx"),
    output: Optional[Path] = typer.Option(None, "-o", "--output"),
) -> None:
    """Close an outlet's business day with a sealed Z report (or show one with --id)."""
    from stalela.fiscal.reports import service

    fmt, business_day = _format(fmt), _day(day, "day")
    if (outlet is None) == (z_id is None):
        console.print("[red]error[/red] give either --outlet (close a day) or --id (show a Z report)")
        raise typer.Exit(2)
    settings = get_settings()

    async def run() -> tuple[bytes, bool]:
        async with _tenant_session(settings, tenant) as session:
            if z_id:
                z, created = await service.get_z(session, _principal(tenant), z_id), False
            else:
                result = await service.close_day(session, settings, _principal(tenant), outlet, business_day,
                                                 closed_by="cli")
                z, created = result.z, result.created
            return await _document(session, service.render_z(settings, z), fmt), created

    try:
        content, created = asyncio.run(run())
    except Exception as exc:
        _fail(exc)
    if outlet:
        console.print("day closed" if created else "day was already closed: its Z report", highlight=False)
    _write(content, output, fmt)


@report_app.command("x")
def report_x(
    tenant: str = typer.Option(..., help="Tenant id"),
    outlet: str = typer.Option(..., help="Outlet id"),
    day: Optional[str] = typer.Option(None, "--day", help="An open business day (default: the current one)"),
    fmt: str = typer.Option("json", "--format", help="json | pdf | csv | xlsx"),
    output: Optional[Path] = typer.Option(None, "-o", "--output"),
) -> None:
    """The open business day so far (signed, not a close)."""
    from stalela.fiscal.reports import service

    fmt, business_day = _format(fmt), _day(day, "day")
    settings = get_settings()

    async def run() -> bytes:
        async with _tenant_session(settings, tenant, readonly=True) as session:
            report = await service.x_report(session, settings, _principal(tenant), outlet, business_day)
            return await _document(session, report, fmt)

    try:
        content = asyncio.run(run())
    except Exception as exc:
        _fail(exc)
    _write(content, output, fmt)


@report_app.command("a")
def report_a(
    tenant: str = typer.Option(..., help="Tenant id"),
    date_from: str = typer.Option(..., "--from", help="First business day, inclusive"),
    date_to: str = typer.Option(..., "--to", help="Last business day, inclusive"),
    outlet: Optional[str] = typer.Option(None, help="Outlet id (default: every outlet of the tenant)"),
    fmt: str = typer.Option("csv", "--format", help="json | csv | xlsx | pdf"),
    output: Path = typer.Option(..., "-o", "--output"),
) -> None:
    """Every invoice and line over business days, with totals per day and group; streamed to a file."""
    from stalela.fiscal.reports import a_report

    fmt = _format(fmt)
    start, end = _day(date_from, "from"), _day(date_to, "to")
    settings = get_settings()

    async def run() -> int:
        async with _tenant_session(settings, tenant, readonly=True) as session:
            report = await a_report.prepare(session, settings, _principal(tenant), outlet_id=outlet, day_from=start,
                                            day_to=end, fmt=fmt)
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=console, transient=True, disable=not console.is_terminal) as bar:
                task = bar.add_task("invoices", total=None)
                return await a_report.write_file(session, report, fmt, str(output),
                                                 progress=lambda n: bar.advance(task, n))

    try:
        count = asyncio.run(run())
    except Exception as exc:
        _fail(exc)
    console.print(f"wrote {output}: {count} invoices", highlight=False)


@report_app.command("rebuild")
def report_rebuild(
    tenant: str = typer.Option(..., help="Tenant id"),
    outlet: Optional[str] = typer.Option(None, help="Outlet id (default: every outlet)"),
    check: bool = typer.Option(False, "--check", help="Only compare; change nothing"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Recompute the cached day figures from the sealed invoices (exit 1: a Z disagrees, or --check found drift)."""
    from stalela.fiscal.reports import service
    from stalela.fiscal.reports.repository import tenant_outlets

    settings = get_settings()

    async def run() -> list[dict]:
        async with _tenant_session(settings, tenant) as session:
            ids = [outlet] if outlet else [o.id for o in await tenant_outlets(session)]
            return [(await service.rebuild_figures(session, i, apply=not check)).as_json() for i in ids]

    try:
        results = asyncio.run(run())
    except Exception as exc:
        _fail(exc)
    if as_json:
        print(json.dumps({"outlets": results}, indent=2))
    for r in results if not as_json else ():
        state = "ok" if not r["repaired"] and not r["z_mismatches"] else (
            f"{'would repair' if check else 'repaired'} {len(r['repaired'])} day(s)"
            + (f"; Z reports disagreeing with invoices: {', '.join(r['z_mismatches'])}" if r["z_mismatches"] else ""))
        console.print(f"{r['outlet_id']}: {r['invoices']} invoices over {r['days']} day(s): {state}", highlight=False)
    raise typer.Exit(1 if any(r["z_mismatches"] or (check and r["repaired"]) for r in results) else 0)
