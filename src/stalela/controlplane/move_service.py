"""Asking for a move, reading it, and purging what a completed move left behind (operator only)."""
from __future__ import annotations

import json

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.audit import platform as platform_audit
from stalela.config import Settings
from stalela.controlplane import placement as placements
from stalela.controlplane import schemas
from stalela.controlplane.models import TenantMove
from stalela.controlplane.moves import TOPIC
from stalela.controlplane.repository import MoveRepository, RegistryRepository
from stalela.db.base import utcnow
from stalela.errors import Conflict, NotFound
from stalela.kit.ids import new_id
from stalela.outbox.service import enqueue
from stalela.tenancy.models import Tenant

PURGE_TOPIC = "tenant.move_purge"
MOVABLE = ("active", "suspended")


async def request_move(session: AsyncSession, settings: Settings, tenant_id: str,
                       data: schemas.MoveRequest, *, actor: str) -> TenantMove:
    if settings.is_sqlite:
        raise Conflict("moving a tenant needs PostgreSQL (embedded mode keeps every tenant where it was created)",
                       code="move_unsupported")
    tenant = await RegistryRepository(session).get_for_update(tenant_id)
    if tenant is None:
        raise NotFound("no such tenant", code="tenant_not_found")
    if tenant.status not in MOVABLE:
        raise Conflict(f"a {tenant.status} tenant cannot move", code="tenant_status_conflict")
    if await MoveRepository(session).running(tenant_id):
        raise Conflict("a move of this tenant is already running", code="move_in_progress")
    if data.to == "shared":
        if data.target is not None:
            raise Conflict("a target server is for the dedicated tier", code="field_not_applicable", field="target")
        if tenant.placement is None:
            raise Conflict("the tenant is already in the shared tier", code="move_noop", field="to")
        target = None
    else:
        used = await RegistryRepository(session).placements()
        target = placements.choose(settings, tenant.id, used, data.target)
        if tenant.placement is not None and placements.server_of(target) == placements.server_of(tenant.placement):
            raise Conflict("the tenant's database is already on that server; name another as target",
                           code="move_noop", field="target")
    if await MoveRepository(session).unpurged_source(tenant.id, target):
        # An earlier move left the tenant's old rows there, read-only: the copy would merge with them.
        raise Conflict("an earlier move of this tenant left its copy there: purge that move's source first",
                       code="purge_required")
    move = TenantMove(tenant_id=tenant.id, id=new_id("mov"), to_tier=data.to, source=tenant.placement, target=target,
                      status="running", step="requested", created_at=utcnow(), updated_at=utcnow())
    session.add(move)
    enqueue(session, tenant.id, TOPIC, {"tenant_id": tenant.id, "move_id": move.id})
    await session.flush()
    await platform_audit.record(session, actor, "tenant.move_requested", tenant.id,
                                {"move_id": move.id, "to": data.to, "source": move.source, "target": target})
    return move


async def get_move(session: AsyncSession, tenant_id: str, move_id: str) -> TenantMove:
    move = await MoveRepository(session).get_in_tenant(tenant_id, move_id)
    if move is None:
        raise NotFound("no such move", code="move_not_found")
    return move


async def list_moves(session: AsyncSession, tenant_id: str, *, limit: int,
                     starting_after: str | None) -> tuple[list[TenantMove], bool]:
    if await RegistryRepository(session).get(tenant_id) is None:
        raise NotFound("no such tenant", code="tenant_not_found")
    return await MoveRepository(session).page_of_tenant(tenant_id, limit=limit, starting_after=starting_after)


async def request_purge(session: AsyncSession, tenant_id: str, move_id: str, *, actor: str) -> TenantMove:
    move = await MoveRepository(session).get_in_tenant(tenant_id, move_id)
    if move is None:
        raise NotFound("no such move", code="move_not_found")
    if move.status != "completed":
        raise Conflict("only a completed move's source can be purged", code="move_not_completed")
    if move.purged_at is not None:
        return move
    tenant = await RegistryRepository(session).get(tenant_id)
    if tenant.placement == move.source:
        raise Conflict("the tenant is back on this move's source: it is live, not a leftover", code="source_in_use")
    enqueue(session, tenant_id, PURGE_TOPIC, {"tenant_id": tenant_id, "move_id": move_id})
    await platform_audit.record(session, actor, "tenant.move_source_purge_requested", tenant_id,
                                {"move_id": move_id, "source": move.source})
    return move


def render(move: TenantMove) -> schemas.MoveOut:
    return schemas.MoveOut(id=move.id, tenant_id=move.tenant_id, status=move.status, step=move.step, to=move.to_tier,
                           source=move.source, target=move.target, error=move.error,
                           receipt=json.loads(move.receipt) if move.receipt else None, created_at=move.created_at,
                           completed_at=move.completed_at)
