"""``stalela mcp --stdio`` and ``stalela drafts``: the MCP server for a local assistant, and a person's
approval of a drafted invoice from the server's console (docs/assistants.md)."""
from __future__ import annotations

import asyncio
import getpass
import os
from types import SimpleNamespace
from typing import Any, Optional

import typer

from stalela.cli.output import emit, fail, note, usage
from stalela.cli.reports import _tenant_session
from stalela.config import get_settings

drafts_app = typer.Typer(help="Invoice drafts: list, show, approve (a person's decision)", no_args_is_help=True)


def mcp(stdio: bool = typer.Option(False, "--stdio", help="Speak MCP on stdin/stdout (the only transport here: "
                                   "over HTTP the server is /mcp of `stalela serve`)")) -> None:
    """Run the MCP server on stdio as the API key in STALELA_API_KEY (an assistant such as Claude Code spawns it)."""
    if not stdio:
        usage("give --stdio: over HTTP the MCP server is /mcp of `stalela serve`")
    key = os.environ.get("STALELA_API_KEY", "").strip()
    if not key:
        usage("set STALELA_API_KEY to the API key the assistant acts as")
    try:
        asyncio.run(_serve_stdio(key))
    except Exception as exc:  # a refused key or an unreachable database, on stderr: stdout is the wire
        fail(exc)


async def _serve_stdio(key: str) -> None:
    from stalela.app import create_app
    from stalela.assistants import mcp_runtime, mcp_server
    from stalela.db.session import Database

    settings = get_settings()
    db = Database.from_settings(settings)
    document: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:  # built once, on the first documentation tool call
        if not document:
            document.update(create_app(settings.model_copy(update={"mcp_enabled": False})).openapi())
        return document

    state = SimpleNamespace(db=db, settings=settings)  # no rate limiter, no API-call meter: see docs/assistants.md
    runtime = mcp_runtime.Runtime(settings, openapi, lambda: state)
    try:
        principal = await runtime.principal(key)  # refuse at start, not at the first tool
        note(f"MCP on stdio for tenant {principal.tenant_id} as api_key:{principal.api_key_id}", markup=False)
        with mcp_runtime.acting_as(key):
            await mcp_server.build(runtime).run_stdio_async()
    finally:
        await db.dispose()


def _approver(by: Optional[str]) -> str:
    return f"cli:{by or getpass.getuser()}"


@drafts_app.command("list")
def drafts_list(tenant: str = typer.Option(..., help="Tenant id"),
                status: Optional[str] = typer.Option("draft", help="draft, sealed or discarded"),
                as_json: bool = typer.Option(False, "--json")) -> None:
    """The tenant's drafts, newest first (50)."""
    try:
        rows = asyncio.run(_list(tenant, status))
    except Exception as exc:
        fail(exc)
    emit(rows, as_json, [f"{d['id']}  {d['status']:9}  {d['confidence']:>6}  {d['created_at']}" for d in rows])


async def _list(tenant: str, status: Optional[str]) -> list[dict[str, Any]]:
    from stalela.assistants import service
    from stalela.auth.principal import Principal

    async with _tenant_session(get_settings(), tenant, readonly=True) as session:
        rows, _ = await service.list_drafts(session, Principal(kind="operator", tenant_id=tenant), status=status,
                                            limit=50, starting_after=None)
    return rows


@drafts_app.command("show")
def drafts_show(draft_id: str = typer.Argument(...), tenant: str = typer.Option(..., help="Tenant id"),
                as_json: bool = typer.Option(False, "--json")) -> None:
    """One draft: what approving it would seal (buyer, lines, taxes, total) and its content hash."""
    try:
        draft = asyncio.run(_show(tenant, draft_id))
    except Exception as exc:
        fail(exc)
    from stalela.assistants.mcp_tools import confirmation_text

    emit(draft, as_json, confirmation_text(draft).splitlines()[1:])


async def _show(tenant: str, draft_id: str) -> dict[str, Any]:
    from stalela.assistants import service
    from stalela.auth.principal import Principal

    async with _tenant_session(get_settings(), tenant, readonly=True) as session:
        return await service.get_draft(session, Principal(kind="operator", tenant_id=tenant), draft_id)


@drafts_app.command("approve")
def drafts_approve(draft_id: str = typer.Argument(...), tenant: str = typer.Option(..., help="Tenant id"),
                   expires_in: int = typer.Option(900, min=30, max=3600, help="Seconds the approval stays valid"),
                   by: Optional[str] = typer.Option(None, help="Who approves (default: the system user)"),
                   as_json: bool = typer.Option(False, "--json")) -> None:
    """Approve a draft as it is now (single use, bound to its content hash): print the approval id to give
    the assistant. Run `stalela drafts show` first: this is the person's decision."""
    try:
        out = asyncio.run(_approve(tenant, draft_id, expires_in, _approver(by)))
    except Exception as exc:
        fail(exc)
    emit(out, as_json, [out["id"]])


async def _approve(tenant: str, draft_id: str, expires_in: int, approver: str) -> dict[str, Any]:
    from stalela.assistants import service
    from stalela.auth.principal import Principal

    async with _tenant_session(get_settings(), tenant) as session:
        return await service.approve(session, Principal(kind="operator", tenant_id=tenant), draft_id, expires_in,
                                     approver=approver)
