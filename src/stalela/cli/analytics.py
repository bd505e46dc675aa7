"""``stalela analytics rebuild``: the analytics sums recomputed from the invoices and the authority's outcomes."""
from __future__ import annotations

import asyncio

import typer

from stalela.cli.output import EXIT_FAILED, EXIT_OK, emit, fail
from stalela.config import get_settings

analytics_app = typer.Typer(help="Analytics", no_args_is_help=True)


@analytics_app.command("rebuild")
def analytics_rebuild(
    tenant: str = typer.Option(..., help="Tenant id"),
    check: bool = typer.Option(False, "--check", help="Only compare; change nothing (exit 1 on drift)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Recompute the tenant's analytics sums (after upgrading to 0034, for the history before it; or to check)."""
    from stalela.analytics.rebuild import rebuild
    from stalela.db.session import Database
    from stalela.tenancy.context import bind_tenant

    settings = get_settings()

    async def run() -> dict:
        db = Database.from_settings(settings)
        try:
            async with db.transaction() as session:
                await bind_tenant(session, tenant)
                return (await rebuild(session, tenant, apply=not check)).as_json()
        finally:
            await db.dispose()

    try:
        result = asyncio.run(run())
    except Exception as exc:  # noqa: BLE001 - the problem's code is printed, the exit code says it failed
        fail(exc)
    drifted = {t: n for t, n in result["drift"].items() if n}
    state = ("no drift" if not drifted else
             f"{'would replace' if check else 'replaced'} " + ", ".join(f"{t} ({n} rows differed)" for t, n in drifted.items()))
    emit(result, as_json, f"{tenant}: {result['invoices']} invoices, {result['outcomes']} outcomes: {state}")
    raise typer.Exit(EXIT_FAILED if check and drifted else EXIT_OK)
