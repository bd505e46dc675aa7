"""What the MCP tools run on (docs/assistants.md, "MCP server"): the caller found again from its API key on
every call, the table of each tool's permission, and ``Runtime.run``, which every tool's body goes through
(the caller, its permission, the tenant's transaction, the metrics and the audit entry).

A tool with no caller (the SDK's in-memory and stdio transports never authenticate; stdio gets its key
from ``acting_as``) fails closed.
"""
from __future__ import annotations

import hashlib
import json
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterator

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver.exceptions import ToolError
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.audit import service as audit
from stalela.auth.permissions import Perm, check, check_provisioned, check_writable, permissions
from stalela.auth.principal import Principal
from stalela.auth.service import authenticate_api_key, cached_api_key, touch_api_key
from stalela.billing import api_quota
from stalela.config import Settings
from stalela.db.session import Database
from stalela.errors import StalelaError
from stalela.observability.logging import get_logger
from stalela.observability.metrics import MCP_TOOL_CALLS, MCP_TOOL_DURATION
from stalela.tenancy.context import bind_tenant

log = get_logger(__name__)

# What each tool needs: the permission of the REST route it stands for (None: any valid key). The list a
# caller sees (tools/list) and what it may call (tools/call) both come from this table.
TOOL_PERMISSIONS: dict[str, Perm | None] = {
    "search_api_docs": None, "get_endpoint_details": None, "generate_code_example": None,
    "draft_invoice": Perm.INVOICES_DRAFT, "get_draft": Perm.INVOICES_DRAFT, "seal_draft": Perm.INVOICES_DRAFT,
    "get_invoice": Perm.INVOICES_READ, "list_invoices": Perm.INVOICES_READ, "verify_invoice": Perm.INVOICES_READ,
    "get_report": Perm.REPORTS_READ, "get_usage": Perm.USAGE_READ,
}

# stdio and in-process callers: the API key the process was started with (``stalela mcp --stdio`` reads
# it from the environment). HTTP callers bring theirs on every request.
_PROCESS_KEY: ContextVar[str | None] = ContextVar("stalela_mcp_key", default=None)


# Per tools/call, set by the server's ``RefusedCalls`` middleware: a mark ``Runtime.run`` leaves when the call
# reaches it (it then counts and audits the call itself). A list, mutated, so the mark is seen whatever context
# the SDK runs the handler in.
_REACHED: ContextVar[list[bool] | None] = ContextVar("stalela_mcp_reached", default=None)


@contextmanager
def watching_call() -> Iterator[list[bool]]:
    """Watch one tools/call: the list is non-empty once ``Runtime.run`` took it over."""
    reached: list[bool] = []
    token = _REACHED.set(reached)
    try:
        yield reached
    finally:
        _REACHED.reset(token)


@contextmanager
def acting_as(api_key: str) -> Iterator[None]:
    """Run the stdio transport (or an in-process client) as ``api_key``; checked again on every call."""
    token = _PROCESS_KEY.set(api_key)
    try:
        yield
    finally:
        _PROCESS_KEY.reset(token)


class ToolFailure(ToolError):
    """What the model reads when a tool fails: a stable code, the reason and the offending field, as JSON
    (``ToolError`` is the only exception whose text the SDK passes to the model)."""

    def __init__(self, code: str, detail: str, field: str | None = None, **extra: Any) -> None:
        self.code = code
        body = {"code": code, "detail": detail} | ({"field": field} if field else {}) | extra
        super().__init__(json.dumps(body, ensure_ascii=False, default=str))

    @classmethod
    def of(cls, exc: StalelaError) -> ToolFailure:
        extra = {k: v for k, v in (exc.extra or {}).items() if k in ("required", "questions", "z_report_id")}
        errors = [{"field": e.field, "code": e.code, "detail": e.detail} for e in exc.errors][:10]
        return cls(exc.code, exc.detail, exc.field, **extra, **({"errors": errors} if errors else {}))


UNAUTHENTICATED = ("unauthenticated", "this MCP server acts only for an API key: send 'Authorization: Bearer "
                   "sk_...' over HTTP, or set STALELA_API_KEY for stdio")


@dataclass
class Runtime:
    """What the tools run on: the app's state (its database, and over HTTP its rate limiter and API-call
    counter), its settings, and its OpenAPI document (the documentation tools)."""

    settings: Settings
    openapi: Callable[[], dict[str, Any]]
    # The app's state: its database exists once the lifespan has started, so it is looked up at each call.
    # ``limiter`` and ``api_calls`` are optional (stdio has neither: its caller runs on the server's host).
    state: Callable[[], Any]

    @property
    def db(self) -> Database:
        return self.state().db

    async def principal(self, api_key: str) -> Principal:
        """The key's caller now, as the REST API would find it (the verified-key cache included)."""
        authorization = f"Bearer {api_key}"
        found = cached_api_key(authorization)
        if found is not None:
            check_provisioned(found.tenant_status)
            return found
        async with self.db.transaction(readonly=True) as session:
            principal, stale = await authenticate_api_key(session, authorization)
        if stale:
            # As over REST: the key's last use is recorded (the console shows it), and the next call is served
            # from the verified-key cache.
            async with self.db.transaction() as side:
                await touch_api_key(side, principal)
        return principal

    async def caller(self) -> Principal:
        token = get_access_token()
        key = token.token if token is not None else _PROCESS_KEY.get()
        if not key:
            raise ToolFailure(*UNAUTHENTICATED)
        try:
            return await self.principal(key)
        except StalelaError as exc:
            raise ToolFailure.of(exc) from None

    async def run(self, tool: str, arguments: dict[str, Any],
                  work: Callable[[AsyncSession | None, Principal], Awaitable[Any]], *, write: bool = False,
                  reads_tenant: bool = True) -> Any:
        """One tool call: the caller, its permission, the tenant's transaction, the metrics and the audit entry
        (key, tool, argument hash, outcome). The transaction commits when ``work`` returns. ``reads_tenant``
        False: ``work`` reads none of the tenant's data (the documentation tools) and gets no transaction."""
        started = time.perf_counter()
        outcome = "ok"
        principal: Principal | None = None
        reached = _REACHED.get()
        if reached is not None:
            reached.append(True)
        try:
            principal = await self.caller()
            gate(principal, tool, write)
            await self._admit(principal)
            if not reads_tenant:
                return await work(None, principal)
            async with self.db.transaction(readonly=not write) as session:
                await bind_tenant(session, principal.tenant_id)
                return await work(session, principal)
        except StalelaError as exc:
            outcome = exc.code
            raise ToolFailure.of(exc) from None
        except ToolFailure as exc:
            outcome = exc.code
            raise
        except Exception:
            # Never a bare "Error executing tool" (the SDK hides other exceptions' text): a code and a reason.
            outcome = "internal_error"
            log.exception("mcp_tool_failed", tool=tool)
            raise ToolFailure("internal_error", "an unexpected error on the server; it is logged: retry later, "
                              "or report the time of the call") from None
        finally:
            MCP_TOOL_CALLS.labels(tool, outcome).inc()
            MCP_TOOL_DURATION.labels(tool).observe(time.perf_counter() - started)
            if principal is not None:
                await self._audit(principal, tool, arguments, outcome)

    async def refused(self, tool: str, arguments: Any, outcome: str) -> None:
        """A call the SDK answered with an error before any tool body ran (arguments that fail the input
        schema, an unknown tool, a resolver's refusal): counted and, when the caller is known, audited like the
        others. An unknown name is counted as ``unknown``: a caller must not grow the metric's labels."""
        name = tool if tool in TOOL_PERMISSIONS else "unknown"
        MCP_TOOL_CALLS.labels(name, outcome).inc()
        try:
            principal = await self.caller()
        except ToolFailure:
            return  # no caller: nobody's audit log to write to (the call was refused as unauthenticated anyway)
        await self._audit(principal, name if name != "unknown" else tool[:100],
                          arguments if isinstance(arguments, dict) else {"arguments": arguments}, outcome)

    async def _admit(self, principal: Principal) -> None:
        """What a REST call goes through after its permission: the key's rate limit (the same bucket as its REST
        calls) and the tenant's ``api_calls`` cap; then the call is counted as an API call (billing's meter).
        A refused call is not counted, as over REST."""
        state = self.state()
        limiter = getattr(state, "limiter", None)
        if limiter is not None:
            rate, burst = limiter.limits(principal.rate_per_second, principal.rate_burst)
            decision = await limiter.take(f"{principal.kind}:{principal.api_key_id}", rate, burst)
            if not decision.allowed:
                raise ToolFailure("rate_limited", "rate limit exceeded; slow down",
                                  retry_after_seconds=max(1, round(decision.retry_after + 0.5)))
        await api_quota.check_cap(state, principal, None)
        counter = getattr(state, "api_calls", None)
        if counter is not None and self.settings.usage_metering:
            counter.add(principal.tenant_id)

    async def _audit(self, principal: Principal, tool: str, arguments: dict[str, Any], outcome: str) -> None:
        """The tenant's hash-chained audit log, in a transaction of its own: a read tool's transaction is
        read-only, and a failed call leaves its entry too. Arguments are hashed, never stored: a request's
        text may name a person."""
        digest = hashlib.sha256(json.dumps(arguments, sort_keys=True, default=str).encode()).hexdigest()
        try:
            async with self.db.transaction() as session:
                await bind_tenant(session, principal.tenant_id)
                await audit.record(session, principal.tenant_id, principal.actor, "mcp.tool_called", tool,
                                   {"tool": tool, "arguments_sha256": digest, "outcome": outcome})
        except Exception:  # the answer stands; the log line says what the audit log lacks
            log.exception("mcp_audit_failed", tool=tool, outcome=outcome)


def visible_tools(principal: Principal) -> set[str]:
    granted = permissions(principal)
    return {name for name, perm in TOOL_PERMISSIONS.items() if perm is None or perm in granted}


def allowed(principal: Principal, tool: str) -> None:
    perm = TOOL_PERMISSIONS.get(tool)
    if perm is not None:
        check(principal, perm)


def gate(principal: Principal, tool: str, write: bool) -> None:
    """What the caller must hold before a tool does anything, its resolvers included: the tool's permission, and
    for a writing tool a tenant that may write (not suspended nor being offboarded)."""
    allowed(principal, tool)
    if write:
        check_writable(principal)
