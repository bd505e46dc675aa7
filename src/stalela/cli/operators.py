"""``stalela operator create / list`` and ``stalela audit verify-platform``: run by whoever holds the
database (first operator accounts, scripts), so the platform audit log names them ``operator:cli``."""
from __future__ import annotations

import asyncio
import secrets
import sys
from typing import Any, Optional

import typer
from rich.markup import escape

from stalela.cli.output import EXIT_FAILED, EXIT_OK, emit, fail, note, out
from stalela.config import Settings, get_settings

operator_app = typer.Typer(help="Operator accounts (the /ops console)", no_args_is_help=True)
audit_app = typer.Typer(help="Audit logs", no_args_is_help=True)
CLI_ACTOR = "operator:cli"


async def _create(settings: Settings, email: str, name: str, role: str, password: str) -> dict[str, Any]:
    from stalela.cli.bootstrap import _session  # lazily, like every command: it loads the domains
    from stalela.controlplane import operator_service

    async with _session(settings) as session:
        op = await operator_service.create_operator(session, settings, CLI_ACTOR, email=email, name=name, role=role,
                                                    password=password)
        return operator_service.view(op)


async def _list(settings: Settings, limit: int) -> list[dict[str, Any]]:
    from stalela.cli.bootstrap import _session  # lazily, like every command: it loads the domains
    from stalela.controlplane import operator_service

    async with _session(settings) as session:
        rows, _ = await operator_service.list_operators(session, limit=limit)
        return [operator_service.view(op) for op in rows]


async def _verify(settings: Settings) -> tuple[int, str | None]:
    from stalela.cli.bootstrap import _session  # lazily, like every command: it loads the domains
    from stalela.audit import platform as platform_audit

    async with _session(settings) as session:
        return await platform_audit.verify(session)


@operator_app.command("create")
def operator_create(
    email: str = typer.Option(...),
    role: str = typer.Option(..., help="platform_admin | support"),
    name: Optional[str] = typer.Option(None),
    password_stdin: bool = typer.Option(False, "--password-stdin",
                                        help="Read the password from standard input (else one is generated)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create an operator; without --password-stdin a password is generated and printed once."""
    from stalela.errors import StalelaError

    generated = not password_stdin
    password = secrets.token_urlsafe(18) if generated else sys.stdin.readline().rstrip("\n")
    try:
        created = asyncio.run(_create(get_settings(), email, name or email, role, password))
    except StalelaError as exc:
        fail(exc)
    if generated:
        created["generated_password"] = password  # shown this once; only its Argon2id hash is stored
    if as_json:
        emit(created, True)
        return
    note(f"operator {created['id']} ({created['email']}, {created['role']})", markup=False)
    if generated:
        emit(None, False, password)  # alone on stdout, for a script to capture


@operator_app.command("list")
def operator_list(limit: int = typer.Option(100, min=1, max=100), as_json: bool = typer.Option(False, "--json")) -> None:
    rows = asyncio.run(_list(get_settings(), limit))
    emit(rows, as_json, [f"{row['id']}\t{row['email']}\t{row['role']}\t{row['status']}" for row in rows])


@audit_app.command("verify-platform")
def verify_platform(as_json: bool = typer.Option(False, "--json")) -> None:
    """Check the platform audit log's hash chain; name the first broken entry (exit 1)."""
    checked, problem = asyncio.run(_verify(get_settings()))
    if as_json:
        emit({"entries": checked, "valid": problem is None, "problem": problem}, True)
    elif problem is None:
        out.print(f"[green]VALID[/green]: {checked} platform audit-log entries, chain intact")
    else:
        out.print(f"[red]INVALID[/red]: {escape(problem)}")
    raise typer.Exit(EXIT_OK if problem is None else EXIT_FAILED)
