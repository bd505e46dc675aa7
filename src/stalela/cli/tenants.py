"""``stalela tenant create`` and ``stalela tenant list``: the tenant registry from the command line, through
the same service as ``POST /v1/tenants`` (docs/operations.md, "Isolation tiers").

``create --tier dedicated --wait`` provisions the tenant in this process rather than waiting for a worker:
the job is resumable and one runner at a time holds it (controlplane.provisioning), so a worker that
picks the same job up meanwhile simply finds it busy, or done, and the command works where no worker runs
(a first install, a script).
"""
from __future__ import annotations

import asyncio
from typing import Any, Optional

import typer
from pydantic import ValidationError
from rich.markup import escape

from stalela.cli.output import EXIT_FAILED, emit, err, fail, note, usage
from stalela.config import Settings, get_settings
from stalela.errors import StalelaError

# Polling a job another runner holds: how often, and for how long at most.
POLL_SECONDS = 0.5
WAIT_SECONDS = 600.0


def register(tenant_app: typer.Typer) -> None:
    """Add these commands to the ``stalela tenant`` sub-app."""
    tenant_app.command("create")(create)
    tenant_app.command("list")(list_tenants)


def create(
    name: str = typer.Option(...),
    tax_id: str = typer.Option(..., "--tax-id"),
    jurisdiction: str = typer.Option("CD", help="CD (DRC) or AR (Argentina)"),
    vat_condition: Optional[str] = typer.Option(
        None, "--vat-condition",
        help="AR only, and required there: responsable_inscripto (A and B receipts), monotributo or exento (C)"),
    tier: str = typer.Option("shared", help="shared (the shared database) or dedicated (a database of its own)"),
    target: Optional[str] = typer.Option(None, help="dedicated: the server (host:port) to place its database on"),
    wait: bool = typer.Option(False, "--wait", help="dedicated: provision it now and return once it is active"),
    locale: Optional[str] = typer.Option(None, help="its default language: fr, es or en (absent: the "
                                                    "jurisdiction's, French for CD, Spanish for AR)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create a tenant and its first API key (printed once, to stdout)."""
    try:
        out = asyncio.run(create_tenant(get_settings(), name, tax_id, jurisdiction, vat_condition, tier=tier,
                                        target=target, wait=wait, locale=locale))
    except (StalelaError, ValidationError) as exc:
        fail(exc)
    except ValueError as exc:
        usage(str(exc))
    t = out["tenant"]
    server = f"  server {t['server']}" if t["server"] else ""
    if not as_json:  # the secret alone on stdout (KEY=$(stalela tenant create …)), like apikey create
        note(f"tenant {t['id']}  tier {t['tier']}  status {t['status']}{server}", markup=False)
        note("its first API key is shown once, below", markup=False)
    emit(out, as_json, [out["api_key"]])
    job = out["tenant"]["provisioning"]
    if job and (job["status"] == "failed" or (wait and out["tenant"]["status"] == "provisioning")):
        reason = f"{job['step']} {job['status']} {job['error'] or ''}"
        err.print(f"[red]provisioning did not finish[/red]: {escape(reason)}")
        raise typer.Exit(EXIT_FAILED)


def list_tenants(
    status: Optional[str] = typer.Option(None, help="provisioning, active, suspended, deprovisioning, deleted"),
    tier: Optional[str] = typer.Option(None, help="shared or dedicated"),
    jurisdiction: Optional[str] = typer.Option(None),
    limit: int = typer.Option(100, min=1, max=1000),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Tenants, newest first, with their tier, status and server."""
    try:
        rows = asyncio.run(search(get_settings(), status, tier, jurisdiction, limit))
    except ValidationError as exc:
        fail(exc)
    except ValueError as exc:
        usage(str(exc))
    lines = [f"{'id':32} {'tier':9} {'status':14} {'job':20} {'server':24} name"]
    for t in rows:
        job = t["provisioning"]
        state = f"{job['step']}/{job['status']}" if job else "-"
        lines.append(f"{t['id']:32} {t['tier']:9} {t['status']:14} {state:20} {t['server'] or '-':24} {t['name']}")
    emit(rows, as_json, lines)


async def create_tenant(settings: Settings, name: str, tax_id: str, jurisdiction: str,
                        vat_condition: str | None = None, *, tier: str = "shared", target: str | None = None,
                        wait: bool = False, locale: str | None = None) -> dict[str, Any]:
    from stalela.controlplane import schemas, service
    from stalela.db.session import Database
    from stalela.tenancy.context import bind_platform

    data = schemas.TenantRegister(name=name, tax_id=tax_id, jurisdiction=jurisdiction, tier=tier, target=target,
                                  locale=locale,
                                  ar={"vat_condition": vat_condition} if vat_condition is not None else None)
    db = Database.from_settings(settings)
    try:
        async with db.transaction() as session:
            await bind_platform(session)
            done = await service.register(session, settings, data, None)
        if wait and done.job.status == "running":
            await _provision(db, settings, done.tenant.id)
        async with db.transaction(readonly=True) as session:
            await bind_platform(session)
            tenant = await service.describe(session, await service.get_tenant(session, done.tenant.id))
        return {"tenant": tenant.model_dump(mode="json"), "api_key": done.api_key, "api_key_id": done.api_key_id}
    finally:
        await db.dispose()


async def _provision(db: Any, settings: Settings, tenant_id: str) -> None:
    from stalela import migrations
    from stalela.controlplane import provisioning, service
    from stalela.tenancy.context import bind_platform

    provisioning.migrator = migrations.upgrade  # the CLI is a composition root, like the workers
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    while loop.time() < deadline:
        try:
            await provisioning.run(db, settings, tenant_id)
            return
        except provisioning.Busy:
            pass  # a worker holds the job: wait for it
        except Exception as exc:  # the job records it; the outbox's event retries it with backoff
            err.print(f"[yellow]provisioning step failed, a worker will retry it[/yellow]: {escape(str(exc))}")
            return
        async with db.transaction(readonly=True) as session:
            await bind_platform(session)
            job = (await service.describe(session, await service.get_tenant(session, tenant_id))).provisioning
        if job is None or job.status != "running":
            return
        await asyncio.sleep(POLL_SECONDS)


async def search(settings: Settings, status: str | None, tier: str | None, jurisdiction: str | None,
                 limit: int) -> list[dict[str, Any]]:
    from stalela.controlplane import schemas, service
    from stalela.db.session import Database
    from stalela.tenancy.context import bind_platform

    filters = schemas.TenantListFilters(status=status, tier=tier, jurisdiction=jurisdiction)
    db = Database.from_settings(settings)
    try:
        async with db.transaction(readonly=True) as session:
            await bind_platform(session)
            out: list[dict[str, Any]] = []
            cursor = None
            while len(out) < limit:
                rows, more = await service.search(session, filters, limit=min(100, limit - len(out)),
                                                  starting_after=cursor)
                out += [(await service.describe(session, t)).model_dump(mode="json") for t in rows]
                if not more or not rows:
                    break
                cursor = rows[-1].id
            return out
    finally:
        await db.dispose()
