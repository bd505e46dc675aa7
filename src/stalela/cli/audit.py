"""``stalela export audit`` and ``stalela verify``: what an auditor runs."""
from __future__ import annotations

import asyncio
import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

import typer
from sqlalchemy.exc import SQLAlchemyError
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from stalela.cli.output import EXIT_FAILED, EXIT_OK, EXIT_USAGE, emit, err, out, usage
from stalela.config import get_settings

export_app = typer.Typer(help="Exports", no_args_is_help=True)


def _day(value: Optional[str], name: str) -> Optional[datetime]:
    if value is None:
        return None
    try:
        return datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=timezone.utc)
    except ValueError:
        usage(f"--{name} must be a date like 2026-11-01")


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=True, disable=not err.is_terminal)


@export_app.command("audit")
def export_audit(
    tenant: str = typer.Option(..., help="Tenant id"),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the .tar.gz"),
    date_from: Optional[str] = typer.Option(None, "--from", help="First day (UTC), inclusive"),
    date_to: Optional[str] = typer.Option(None, "--to", help="Last day (UTC), exclusive"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Write a signed audit export of a tenant's ledger."""
    from stalela.db.session import Database
    from stalela.fiscal.reports.export import write_export
    from stalela.fiscal.ledger.service import checkpoint_if_grown
    from stalela.tenancy.context import bind_tenant

    settings = get_settings()
    start, end = _day(date_from, "from"), _day(date_to, "to")

    async def run() -> dict:
        db = Database.from_settings(settings)
        try:
            # A checkpoint first, so that every invoice sealed so far gets its inclusion proof.
            async with db.transaction() as session:
                await bind_tenant(session, tenant)
                await checkpoint_if_grown(session, settings, tenant)
            with _progress() as bar:
                task = bar.add_task("exporting invoices", total=None)
                async with db.transaction(readonly=True) as session:
                    await bind_tenant(session, tenant)
                    # The operator's export for the tax authority: restricted buyers included (Art. 17(3)(b)).
                    return await write_export(session, settings, tenant, output, date_from=start, date_to=end,
                                              purpose="audit",
                                              progress=lambda n: bar.advance(task, n))
        finally:
            await db.dispose()

    try:
        manifest = asyncio.run(run())
    except Exception as exc:  # an unknown tenant surfaces as NoResultFound
        err.print(f"[red]error[/red] export failed: {type(exc).__name__}: {exc}", markup=False)
        raise typer.Exit(EXIT_FAILED) from None
    counts = manifest["payload"]["counts"]
    emit({"file": str(output), "manifest": manifest}, as_json,
         f"wrote {output}: {counts['invoices']} invoices, {counts['checkpoints']} checkpoints, "
         f"manifest {manifest['hash'][:16]}…")


def verify(
    export: Optional[Path] = typer.Argument(None, help="An audit export (.tar.gz)"),
    database_url: Optional[str] = typer.Option(
        None, "--database-url", help="The control plane to verify from (default: STALELA_DATABASE_URL); a dedicated "
        "tenant's own database is found through it"),
    tenant: Optional[str] = typer.Option(None, help="Verify this tenant's live ledger instead of an export"),
    keys: Optional[Path] = typer.Option(None, help="JWKS file to trust instead of the keys inside the export"),
    audit_log: bool = typer.Option(False, "--audit-log", help="Verify the tenant's audit-log chain instead"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Verify a ledger offline: seals, chains, counters, Merkle roots, proofs. Exit 0 valid, 1 invalid, 2 unusable."""
    from stalela.fiscal.reports.audit import UnusableInput, verify_database, verify_export

    if (export is None) == (tenant is None) or (database_url and not tenant):
        usage("give either EXPORT or --tenant (with --database-url, or the configured database)")
    if audit_log:
        if not tenant:
            usage("--audit-log needs --tenant")
        _verify_audit_log(database_url, tenant, as_json)
    try:
        with _progress() as bar:
            task = bar.add_task("verifying invoices", total=None)
            advance = lambda n: bar.advance(task, n)  # noqa: E731
            if export is not None:
                pinned = _pinned_keys(keys) if keys else None
                report = verify_export(export, pinned_keys=pinned, progress=advance)
            else:
                async def run():
                    db = _control_plane(database_url)
                    try:
                        grace = timedelta(hours=get_settings().offline_void_grace_hours)
                        return await verify_database(db, tenant, progress=advance, void_grace=grace)
                    finally:
                        await db.dispose()

                report = asyncio.run(run())
    except UnusableInput as exc:
        if as_json:
            emit({"valid": False, "unusable": str(exc)}, True)
        else:
            err.print(f"unusable input {exc}", markup=False)
        raise typer.Exit(EXIT_USAGE) from None
    except (OSError, ValueError, SQLAlchemyError) as exc:  # unreachable, unmigrated or not ours at all
        err.print(f"unusable input {type(exc).__name__}: {str(exc).splitlines()[0]}", markup=False)
        raise typer.Exit(EXIT_USAGE) from None

    if as_json:
        emit(report.as_json(), True)
    else:
        # The verdict is the result (stdout); only progress went to stderr.
        out.print(f"tenant {report.tenant_id}: {report.invoices} invoices in {report.series} series, "
                      f"{report.checkpoints} checkpoints ({report.checkpoints_matched} roots recomputed), "
                      f"{report.inclusion_proofs} inclusion and {report.consistency_proofs} consistency proofs",
                      highlight=False)
        if report.events or report.credentials:
            out.print(f"offline sealing: {report.offline_invoices} offline invoices, {report.credentials} credentials, "
                      f"{report.blocks} blocks, {report.voids} voids ({report.events} ledger events)",
                      highlight=False)
        if report.valid:
            out.print("[green]VALID[/green]: every seal, chain, counter, root and proof checks out")
        else:
            out.print(f"[red]INVALID[/red]: {report.failure_count} problem(s); first:", highlight=False)
            # markup=False: "[outlet=..., counter=...]" is data, not Rich markup.
            out.print(f"  {report.failures[0].describe()}", highlight=False, markup=False)
            for more in report.failures[1:5]:
                out.print(f"  then: {more.describe()}", highlight=False, markup=False)
    raise typer.Exit(EXIT_OK if report.valid else EXIT_FAILED)


def _verify_audit_log(database_url: str, tenant: str, as_json: bool) -> None:
    from sqlalchemy import select

    from stalela.audit.models import AuditEntry
    from stalela.audit.service import verify_chain
    from stalela.tenancy.context import bind_tenant

    async def run() -> tuple[int, str | None]:
        db = _control_plane(database_url)
        try:
            async with db.transaction(readonly=True) as session:
                await bind_tenant(session, tenant)
                rows = (await session.execute(select(AuditEntry).order_by(AuditEntry.seq))).scalars()
                return verify_chain(rows)
        finally:
            await db.dispose()

    checked, problem = asyncio.run(run())
    if as_json:
        emit({"entries": checked, "valid": problem is None, "problem": problem}, True)
    elif problem is None:
        out.print(f"[green]VALID[/green]: {checked} audit-log entries, chain intact")
    else:
        out.print(f"[red]INVALID[/red]: {escape(problem)}")
    raise typer.Exit(EXIT_OK if problem is None else EXIT_FAILED)


def _control_plane(database_url: str | None):  # noqa: ANN202
    """The control plane's Database, with the dedicated tier's settings: ``bind_tenant`` then routes to the
    tenant's own database, as for every request (a dedicated tenant's ledger is not in the control plane)."""
    from stalela.db.session import Database

    settings = get_settings()
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    _require_existing_sqlite(settings.effective_database_url)
    return Database.from_settings(settings)


def _require_existing_sqlite(url: str) -> None:
    """Verifying must never create the database it was asked to check."""
    from sqlalchemy.engine import make_url

    from stalela.db.engine import normalize_database_url
    from stalela.fiscal.reports.audit import UnusableInput

    parsed = make_url(normalize_database_url(url))
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        raise UnusableInput(f"no SQLite database at {parsed.database}")


def _pinned_keys(path: Path) -> list[dict]:
    """A JWKS ({"keys": [...]}) or a single JWK as served by GET /v1/keys/{kid}."""
    from stalela.fiscal.reports.audit import UnusableInput

    data = json.loads(path.read_text())
    if isinstance(data, dict) and isinstance(data.get("keys"), list):
        return data["keys"]
    if isinstance(data, dict) and data.get("kty"):
        return [data]
    raise UnusableInput(f"{path} is neither a JWKS nor a JWK")
