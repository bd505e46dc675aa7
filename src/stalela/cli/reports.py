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
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from stalela.cli.output import EXIT_FAILED, EXIT_OK, emit, err, fail, note, usage
from stalela.config import Settings, get_settings

report_app = typer.Typer(help="Z, X and A reports", no_args_is_help=True)
FORMATS = ("json", "pdf", "csv", "xlsx")


def _day(value: Optional[str], name: str) -> Optional[date]:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        usage(f"--{name} must be a date like 2026-11-01")


def _format(value: str, as_json: bool = False) -> str:
    if as_json and value != "json":
        usage("--json is --format json: give one of them")
    if value not in FORMATS:
        usage(f"--format must be one of {', '.join(FORMATS)}")
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
            usage(f"give -o FILE for {fmt}")
        sys.stdout.buffer.write(content)
        sys.stdout.flush()
    else:
        output.write_bytes(content)
        emit(None, False, f"wrote {output} ({len(content)} bytes)")


_fail = fail


@report_app.command("z")
def report_z(
    tenant: str = typer.Option(..., help="Tenant id"),
    outlet: Optional[str] = typer.Option(None, help="Outlet id: close its day (idempotent)"),
    day: Optional[str] = typer.Option(None, "--day", help="Business day to close (default: today, outlet time)"),
    z_id: Optional[str] = typer.Option(None, "--id", help="Show an existing Z report instead of closing"),
    fmt: str = typer.Option("json", "--format", help="json | pdf | csv | xlsx"),
    output: Optional[Path] = typer.Option(None, "-o", "--output"),
    as_json: bool = typer.Option(False, "--json", help="Same as --format json"),
) -> None:
    """Close an outlet's business day with a sealed Z report (or show one with --id)."""
    from stalela.fiscal.reports import service

    fmt, business_day = _format(fmt, as_json), _day(day, "day")
    if (outlet is None) == (z_id is None):
        usage("give either --outlet (close a day) or --id (show a Z report)")
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
        note("day closed" if created else "day was already closed: its Z report")
    _write(content, output, fmt)


@report_app.command("x")
def report_x(
    tenant: str = typer.Option(..., help="Tenant id"),
    outlet: str = typer.Option(..., help="Outlet id"),
    day: Optional[str] = typer.Option(None, "--day", help="An open business day (default: the current one)"),
    fmt: str = typer.Option("json", "--format", help="json | pdf | csv | xlsx"),
    output: Optional[Path] = typer.Option(None, "-o", "--output"),
    as_json: bool = typer.Option(False, "--json", help="Same as --format json"),
) -> None:
    """The open business day so far (signed, not a close)."""
    from stalela.fiscal.reports import service

    fmt, business_day = _format(fmt, as_json), _day(day, "day")
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
    as_json: bool = typer.Option(False, "--json", help="Print the result (file, invoices) as JSON"),
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
                          console=err, transient=True, disable=not err.is_terminal) as bar:
                task = bar.add_task("invoices", total=None)
                return await a_report.write_file(session, report, fmt, str(output),
                                                 progress=lambda n: bar.advance(task, n))

    try:
        count = asyncio.run(run())
    except Exception as exc:
        _fail(exc)
    emit({"file": str(output), "format": fmt, "invoices": count}, as_json, f"wrote {output}: {count} invoices")


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
    lines = []
    for r in results:
        state = "ok" if not r["repaired"] and not r["z_mismatches"] else (
            f"{'would repair' if check else 'repaired'} {len(r['repaired'])} day(s)"
            + (f"; Z reports disagreeing with invoices: {', '.join(r['z_mismatches'])}" if r["z_mismatches"] else ""))
        lines.append(f"{r['outlet_id']}: {r['invoices']} invoices over {r['days']} day(s): {state}")
    emit({"outlets": results}, as_json, lines)
    drift = any(r["z_mismatches"] or (check and r["repaired"]) for r in results)
    raise typer.Exit(EXIT_FAILED if drift else EXIT_OK)
