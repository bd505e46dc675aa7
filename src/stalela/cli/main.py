"""The ``stalela`` command line: serve, migrate, and the registry commands operators script with."""
from __future__ import annotations

import asyncio
import sys
from typing import Optional

import typer

from stalela.cli import output
from stalela.cli import audit as audit_cli
from stalela.cli import migrate as migrate_cli
from stalela.cli import billing as billing_cli
from stalela.cli import analytics as analytics_cli
from stalela.cli import reports as reports_cli
from stalela.cli import privacy as privacy_cli
from stalela.cli import retention as retention_cli
from stalela.cli import billing_cycle as billing_cycle_cli
from stalela.cli import billing_anomalies as billing_anomalies_cli
from stalela.cli import usage as usage_cli
from stalela.cli import tenants as tenants_cli
from stalela.cli import operators as operators_cli
from stalela.cli import assistants as assistants_cli
from stalela.config import get_settings

app = output.Typer(help="Stalela fiscal cloud. Results on stdout (--json: one JSON document), diagnostics on "
                  "stderr; exit 0 ok, 1 failed, 2 usage, 3 unavailable (docs/cli.md).",
                  no_args_is_help=True, pretty_exceptions_enable=False)



@app.callback()
def _diagnostics_on_stderr() -> None:
    # The service's own log lines (a tenant being provisioned, a migration) are diagnostics: stderr, at
    # the configured level. Unconfigured, structlog would print them on stdout, among a command's results.
    from pydantic import ValidationError as SettingsError

    from stalela.observability.logging import configure_logging

    try:
        settings = get_settings()
    except SettingsError:
        return  # the command itself reports the bad setting
    configure_logging(settings.log_level, settings.log_format)


tenant_app = typer.Typer(help="Tenants (control plane)", no_args_is_help=True)
outlet_app = typer.Typer(help="Outlets", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys", no_args_is_help=True)
app.add_typer(tenant_app, name="tenant")
tenants_cli.register(tenant_app)
app.add_typer(outlet_app, name="outlet")
app.add_typer(apikey_app, name="apikey")
keys_app = typer.Typer(help="Signing keys", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(audit_cli.export_app, name="export")
app.add_typer(reports_cli.report_app, name="report")
app.add_typer(analytics_cli.analytics_app, name="analytics")
app.add_typer(retention_cli.retention_app, name="retention")
outbox_app = typer.Typer(help="The outbox: dead letters and replay", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")
device_app = typer.Typer(help="DGI e-MCF devices", no_args_is_help=True)
app.add_typer(device_app, name="device")
user_app = typer.Typer(help="Users", no_args_is_help=True)
app.add_typer(user_app, name="user")
auth_app = typer.Typer(help="Access-token keys", no_args_is_help=True)
app.add_typer(auth_app, name="auth")
simulate_app = typer.Typer(help="Simulators of the services we cannot reach", no_args_is_help=True)
app.add_typer(simulate_app, name="simulate")
app.command("verify")(audit_cli.verify)
app.command("verify-erasure")(privacy_cli.verify_erasure)
app.add_typer(privacy_cli.privacy_app, name="privacy")
app.add_typer(billing_cli.billing_app, name="billing")
billing_cycle_cli.register(billing_cli.billing_app)
billing_anomalies_cli.register(billing_cli.billing_app)
app.add_typer(usage_cli.usage_app, name="usage")
app.add_typer(operators_cli.operator_app, name="operator")
app.add_typer(operators_cli.audit_app, name="audit")
app.add_typer(assistants_cli.drafts_app, name="drafts")
app.command("mcp")(assistants_cli.mcp)
_emit = output.emit
_fail = output.fail


@app.command()
def serve(
    host: Optional[str] = typer.Option(None, help="Bind address (default STALELA_HOST)"),
    port: Optional[int] = typer.Option(None, help="Port (default STALELA_PORT)"),
    workers: Optional[int] = typer.Option(None, help="API processes (default STALELA_WORKERS)"),
    background: Optional[int] = typer.Option(
        None, min=0, max=16,
        help="Supervised background processes, each running `stalela worker` (default "
        "STALELA_BACKGROUND_WORKERS); 0: background work in the API processes (STALELA_INPROCESS_WORKERS)"),
    migrate: bool = typer.Option(True, help="Apply migrations before serving"),
    demo: Optional[bool] = typer.Option(None, help="Create the demo tenant on an empty embedded database"),
    sealers: Optional[int] = typer.Option(
        None, min=0, max=16,
        help="Sealer processes owning the tenants' sealing (default STALELA_SEALER_PROCESSES); 0: the API "
        "processes seal"),
) -> None:
    """Start the HTTP service and its background processes."""
    from stalela.cli import serve as serve_cli

    serve_cli.run(host, port, workers, background, migrate, demo, sealers)


app.command("migrate")(migrate_cli.migrate)


@outlet_app.command("create")
def outlet_create(
    tenant: str = typer.Option(..., help="Tenant id"),
    code: str = typer.Option(...),
    name: str = typer.Option(...),
    timezone: Optional[str] = typer.Option(
        None, help="IANA timezone; default: the jurisdiction's (Africa/Kinshasa, America/Argentina/Buenos_Aires)"),
    address: Optional[str] = typer.Option(None),
    pos_number: Optional[int] = typer.Option(
        None, "--pos-number", help="AR only, and required there: the ARCA point of sale (1-99998)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create an outlet for a tenant (in Argentina, a point of sale)."""
    from stalela.cli import bootstrap

    try:
        out = asyncio.run(bootstrap.create_outlet(get_settings(), tenant, code, name, timezone, address,
                                                  pos_number))
    except Exception as exc:
        _fail(exc)
    _emit(out, as_json, [f"outlet {out['id']} ({out['code']})"])


@apikey_app.command("create")
def apikey_create(
    tenant: str = typer.Option(..., help="Tenant id"),
    name: str = typer.Option(...),
    outlet: Optional[str] = typer.Option(None, help="Restrict the key to this outlet id"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create an API key (printed once)."""
    from stalela.cli import bootstrap

    try:
        out = asyncio.run(bootstrap.create_api_key(get_settings(), tenant, name, outlet))
    except Exception as exc:
        _fail(exc)
    if not as_json:
        output.note(f"api key {out['id']} created; it is shown once, below", markup=False)
    _emit(out, as_json, [out["api_key"]])


@apikey_app.command("revoke")
def apikey_revoke(
    tenant: str = typer.Option(..., help="Tenant id"),
    key_id: str = typer.Argument(...),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Revoke an API key."""
    from stalela.cli import bootstrap

    try:
        out = asyncio.run(bootstrap.revoke_api_key(get_settings(), tenant, key_id))
    except Exception as exc:
        _fail(exc)
    _emit(out, as_json, [f"revoked {out['id']} at {out['revoked_at']}"])


@keys_app.command("rotate")
def keys_rotate(
    tenant: str = typer.Option(..., help="Tenant id"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Activate a new signing key for a tenant; the old one is retired but stays published."""
    from stalela.cli import bootstrap

    try:
        out = asyncio.run(bootstrap.rotate_key(get_settings(), tenant))
    except Exception as exc:
        _fail(exc)
    _emit(out, as_json, [f"active key {out['kid']} (backend {out['backend']})"])


@keys_app.command("list")
def keys_list(
    tenant: str = typer.Option(..., help="Tenant id"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Every signing key of a tenant, retired ones included."""
    from stalela.cli import bootstrap

    try:
        out = asyncio.run(bootstrap.list_keys(get_settings(), tenant))
    except Exception as exc:
        _fail(exc)
    _emit({"keys": out}, as_json, [f"{k['kid']}  {k['status']:8}  from {k['not_before']}" for k in out])


@app.command()
def worker(
    concurrency: Optional[int] = typer.Option(None, help="Events handled at once (default STALELA_WORKER_CONCURRENCY)"),
) -> None:
    """Run background work (outbox, checkpoints, exports) until SIGTERM; start several for more throughput."""
    from stalela import supervisor
    from stalela.observability.multiproc import leave_multiprocess_mode

    master = supervisor.supervising_master()
    if master is None:
        leave_multiprocess_mode()  # its metrics are its own: STALELA_WORKER_METRICS_PORT
    else:
        # Started by `stalela serve --background M`: its metrics go into serve's shared directory (the
        # API's /metrics shows them), and it stops with that master, even one killed with SIGKILL.
        supervisor.die_with(master, grace=supervisor.STOP_SECONDS)
    from stalela.observability.runtime import configure
    from stalela.workers import run_worker

    settings = get_settings()
    if master is not None:
        # M processes cannot share one port, and serve's /metrics already has their figures.
        settings = settings.model_copy(update={"worker_metrics_port": None})
    configure(settings)
    asyncio.run(run_worker(settings, concurrency))


@app.command(hidden=True)
def sealer() -> None:
    """Internal: one of `stalela serve`'s sealer processes (it starts and supervises them)."""
    from stalela import supervisor
    from stalela.observability.runtime import configure

    master = supervisor.supervising_master()
    if master is not None:  # it stops with its master, even one killed with SIGKILL
        supervisor.die_with(master, grace=supervisor.STOP_SECONDS)
    from stalela.sealers import run_sealer

    settings = get_settings()
    configure(settings)
    asyncio.run(run_sealer(settings))


@outbox_app.command("dead")
def outbox_dead(
    topic: Optional[str] = typer.Option(None),
    limit: int = typer.Option(50),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List dead events (newest first)."""
    from stalela.cli import bootstrap

    rows = asyncio.run(bootstrap.outbox_dead(get_settings(), topic, limit))
    _emit({"data": rows}, as_json,
          [f"{r['id']}  {r['topic']:24} {r['tenant_id']}  attempts={r['attempts']}  "
           f"{(r['last_error'] or '').splitlines()[0][:80] if r['last_error'] else ''}" for r in rows])
    if not rows and not as_json:
        output.note("no dead events")


@outbox_app.command("replay")
def outbox_replay(
    ids: list[str] = typer.Argument(None, help="Event ids"),
    topic: Optional[str] = typer.Option(None, help="Replay every dead event of this topic"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Put dead events back in the queue."""
    from stalela.cli import bootstrap

    try:
        count = asyncio.run(bootstrap.outbox_replay(get_settings(), ids or None, topic))
    except Exception as exc:
        _fail(exc)
    _emit({"replayed": count}, as_json, [f"replayed {count} event(s)"])


@device_app.command("register")
def device_register(
    outlet: str = typer.Option(..., help="Outlet id"),
    nim: str = typer.Option(..., help="The device's NIM at the DGI"),
    url: str = typer.Option(..., help="e-MCF base URL"),
    token_stdin: bool = typer.Option(False, "--token-stdin", help="Read the JWT token from standard input"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Register (or replace) an outlet's DGI e-MCF device."""
    from stalela.cli import bootstrap

    if not token_stdin:
        output.usage("pass the token on standard input with --token-stdin (never as an argument)")
    token = sys.stdin.readline().strip()
    if not token:
        output.usage("empty token on standard input")
    try:
        out = asyncio.run(bootstrap.register_device(get_settings(), outlet, nim, url, token))
    except Exception as exc:
        _fail(exc)
    _emit(out, as_json, [f"device {out['nim']} registered for outlet {out['outlet_id']} ({out['base_url']})"])


@simulate_app.command("dgi", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def simulate_dgi(ctx: typer.Context) -> None:
    """Run the DGI e-MCF simulator (options: --port, --device NIM:TOKEN, --faults SPEC, ...)."""
    from stalela.authority.simulator import main as simulator_main

    raise typer.Exit(simulator_main(list(ctx.args)))


@simulate_app.command("arca", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def simulate_arca(ctx: typer.Context) -> None:
    """Run the ARCA WSAA + WSFEv1 simulator (options: --port, --faults SPEC, --ca PEM, --seed, ...)."""
    from stalela.authority.simulator.arca import main as arca_main

    raise typer.Exit(arca_main(list(ctx.args)))



def _simulate_marketplace(platform: str, label: str) -> None:
    """Register ``stalela simulate <platform>``: one named command per marketplace."""

    def command(ctx: typer.Context) -> None:
        from stalela.connectors.simulator import main as marketplace_main

        raise typer.Exit(marketplace_main(platform, list(ctx.args)))

    command.__name__ = f"simulate_{platform}"
    simulate_app.command(
        platform, context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        help=f"Run the {label} simulator (options: --port, --secret, --time-scale, --faults SPEC, ...).",
    )(command)


for _platform, _label in (("shopify", "Shopify"), ("mercadolibre", "Mercado Libre"),
                          ("tiendanube", "Tienda Nube"), ("woocommerce", "WooCommerce")):
    _simulate_marketplace(_platform, _label)


@user_app.command("create")
def user_create(
    tenant: str = typer.Option(..., help="Tenant id"),
    email: str = typer.Option(...),
    role: str = typer.Option(..., help="owner | admin | accountant | cashier | auditor"),
    name: Optional[str] = typer.Option(None),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create a user directly (e.g. a tenant's first owner)."""
    from stalela.cli import bootstrap

    if not password_stdin:
        output.usage("pass the password on standard input with --password-stdin")
    password = sys.stdin.readline().rstrip("\n")
    try:
        out = asyncio.run(bootstrap.create_user(get_settings(), tenant, email, name or email, role, password))
    except Exception as exc:
        _fail(exc)
    _emit(out, as_json, [f"user {out['id']} ({out['email']}, {out['role']})"])


@auth_app.command("rotate-keys")
def auth_rotate_keys(as_json: bool = typer.Option(False, "--json")) -> None:
    """Start signing access tokens with a new RS256 key (the old one keeps verifying)."""
    from stalela.auth.tokens import rotate
    from stalela.db.session import Database

    async def run() -> str:
        settings = get_settings()
        db = Database.from_settings(settings)
        try:
            return await rotate(db, settings)
        finally:
            await db.dispose()

    kid = asyncio.run(run())
    _emit({"kid": kid}, as_json, [kid])
    if not as_json:
        output.note(f"access tokens are now signed by {kid}", markup=False)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
