"""``stalela operator create / list`` and ``stalela audit verify-platform``: run by whoever holds the
database (first operator accounts, scripts), so the platform audit log names them ``operator:cli``."""
from __future__ import annotations

import asyncio
import json
import secrets
import sys
from typing import Any, Optional

import typer
from rich.console import Console

from stalela.config import Settings, get_settings

operator_app = typer.Typer(help="Operator accounts (the /ops console)", no_args_is_help=True)
audit_app = typer.Typer(help="Audit logs", no_args_is_help=True)
console = Console(stderr=True)
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
        out = asyncio.run(_create(get_settings(), email, name or email, role, password))
    except StalelaError as exc:
        console.print(f"[red]error[/red] {exc.code}: {exc.detail}", highlight=False)
        raise typer.Exit(2) from None
    if generated:
        out["generated_password"] = password  # shown this once; only its Argon2id hash is stored
    if as_json:
        print(json.dumps(out))
        return
    console.print(f"operator {out['id']} ({out['email']}, {out['role']})", highlight=False)
    if generated:
        print(password)  # alone on stdout, for a script to capture


@operator_app.command("list")
def operator_list(limit: int = typer.Option(100, min=1, max=100), as_json: bool = typer.Option(False, "--json")) -> None:
    rows = asyncio.run(_list(get_settings(), limit))
    if as_json:
        print(json.dumps(rows))
        return
    for row in rows:
        print(f"{row['id']}\t{row['email']}\t{row['role']}\t{row['status']}")


@audit_app.command("verify-platform")
def verify_platform(as_json: bool = typer.Option(False, "--json")) -> None:
    """Check the platform audit log's hash chain; name the first broken entry (exit 1)."""
    checked, problem = asyncio.run(_verify(get_settings()))
    if as_json:
        print(json.dumps({"entries": checked, "valid": problem is None, "problem": problem}))
    elif problem is None:
        console.print(f"[green]VALID[/green]: {checked} platform audit-log entries, chain intact")
    else:
        console.print(f"[red]INVALID[/red]: {problem}", highlight=False)
    raise typer.Exit(0 if problem is None else 1)
