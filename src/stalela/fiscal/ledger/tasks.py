"""Periodic checkpoints: sign each tenant's tree head when its log grew (default hourly).

Runs in every process that has in-process workers on; duplicates across processes are avoided by
re-checking under the tenant's log lock (``service.checkpoint_if_grown``).
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.db.session import Database
from stalela.fiscal.ledger import service
from stalela.fiscal.ledger.models import Checkpoint, MerkleLog
from stalela.kit.periodic import every
from stalela.observability.logging import get_logger
from stalela.tenancy.context import bind_platform, bind_tenant

log = get_logger("stalela.ledger")


async def due_tenants(db: Database, interval: timedelta) -> list[str]:
    async with db.transaction(readonly=True) as session:
        await bind_platform(session)
        latest = (
            select(Checkpoint.tenant_id, func.max(Checkpoint.tree_size).label("size"),
                   func.max(Checkpoint.timestamp).label("at"))
            .group_by(Checkpoint.tenant_id).subquery()
        )
        stmt = (
            select(MerkleLog.tenant_id, MerkleLog.size, latest.c.size, latest.c.at)
            .outerjoin(latest, latest.c.tenant_id == MerkleLog.tenant_id)
            .where(MerkleLog.size > func.coalesce(latest.c.size, 0))
        )
        now = utcnow()
        return [t for t, _size, _cp_size, at in await session.execute(stmt) if at is None or now - at >= interval]


async def checkpoint_due_tenants(db: Database, settings: Settings) -> int:
    made = 0
    for tenant_id in await due_tenants(db, timedelta(seconds=settings.checkpoint_interval_seconds)):
        try:
            async with db.transaction() as session:
                await bind_tenant(session, tenant_id)
                if await service.checkpoint_if_grown(session, settings, tenant_id):
                    made += 1
        except Exception:  # one tenant's failure (e.g. its signer) must not stop the others
            log.exception("periodic_checkpoint_failed", tenant_id=tenant_id)
    return made


async def periodic_checkpoints(db: Database, settings: Settings) -> None:
    pause = min(settings.checkpoint_interval_seconds, 60)
    await every(pause, lambda: checkpoint_due_tenants(db, settings), log, "periodic_checkpoints_failed")
