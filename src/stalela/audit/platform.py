"""The platform audit log: every operator action, one hash chain for the whole platform.

The same entry hash and verification as the tenants' logs (``audit.service``), in a table of its own
(``platform_audit_log``, a control-plane table: no tenant_id, append-only). It sits here, in ``audit``,
rather than in ``controlplane`` because the actions it records happen in domains below the control
plane too (a tenant's suspension in ``accounts``, a replay in ``outbox``, billing's operator routes).

Actors: ``operator:token`` (the static STALELA_OPERATOR_TOKEN, i.e. automation), ``operator:<id>``
(an operator user, signed in with a password or OpenID Connect), ``system``. Details never carry an
e-mail address: the chain cannot be edited, so nothing in it could ever be erased.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import true
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.audit.models import PlatformAuditEntry
from stalela.audit.platform_repository import PlatformAuditRepository
from stalela.audit.service import ChainCheck, append, render

LOCK = "audit:platform"


async def record(session: AsyncSession, actor: str, action: str, target: str | None = None,
                 details: dict[str, Any] | None = None, ip: str | None = None) -> PlatformAuditEntry:
    """Append an entry in the caller's transaction: it commits (or rolls back) with the action."""
    return await append(session, PlatformAuditEntry, LOCK, true(), {}, actor, action, target, details, ip)


async def page(session: AsyncSession, *, limit: int, before: int | None = None,
               action: str | None = None) -> tuple[list[dict[str, Any]], bool]:
    """Entries newest first; ``before`` is a seq (the cursor), so paging is stable while entries arrive."""
    rows = await PlatformAuditRepository(session).newest(limit + 1, before, action)
    return [render(e) for e in rows[:limit]], len(rows) > limit


async def verify(session: AsyncSession, batch: int = 1000) -> tuple[int, str | None]:
    """(entries checked, the first broken entry or None), read in pages of ``batch`` entries."""
    check, last, repo = ChainCheck(), 0, PlatformAuditRepository(session)
    while True:
        rows = await repo.following(last, batch)
        for row in rows:
            problem = check.feed(row)
            if problem:
                return check.checked, problem
        if len(rows) < batch:
            return check.checked, None
        last = rows[-1].seq
