"""The void scheduler: a block whose credential expired more than ``STALELA_OFFLINE_VOID_GRACE_HOURS`` ago
and is still open gets its unused tail voided (reason ``expired``), so no number of the series is left
unexplained (docs/offline.md, "Voids and late invoices").

Runs in every process with in-process workers (and in ``stalela worker``), and for each dedicated database
(controlplane/dataplane.py), like the Z scheduler. Several schedulers at once are fine: a void re-reads the
block under its lock and does nothing when the tail is already accounted for (``void_service.void_expired``).
"""
from __future__ import annotations

from datetime import datetime

from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.db.session import Database
from stalela.fiscal.invoices.repository import NumberBlockRepository
from stalela.kit.periodic import every
from stalela.observability.logging import get_logger
from stalela.offline import void_service
from stalela.tenancy.context import bind_platform, bind_tenant

log = get_logger("stalela.offline")
ROUND = 100  # blocks per scan; a round with a full scan looks again at once


async def due_blocks(db: Database, settings: Settings, now: datetime) -> list[tuple[str, str]]:
    """(tenant, block) of open blocks whose credential expired before ``now`` minus the grace, oldest first."""
    async with db.transaction(readonly=True) as session:
        await bind_platform(session)
        rows = await NumberBlockRepository(session).due_for_void(now - void_service.grace(settings), limit=ROUND)
        return [(b.tenant_id, b.id) for b in rows]


async def void_due_blocks(db: Database, settings: Settings, now: datetime | None = None) -> int:
    """Void what is due; returns how many voids this call sealed. One transaction per block."""
    made = 0
    while True:
        due = await due_blocks(db, settings, now or utcnow())
        sealed = 0
        for tenant_id, block_id in due:
            try:
                async with db.transaction() as session:
                    await bind_tenant(session, tenant_id)
                    if await void_service.void_expired(session, settings, tenant_id, block_id, now):
                        sealed += 1
            except Exception:  # one tenant's failure (its signer, say) must not stop the others
                log.exception("offline_void_failed", tenant_id=tenant_id, block_id=block_id)
        made += sealed
        # A full round that voided everything it saw may have left more behind; a round that voided less
        # than it saw holds blocks that cannot be voided now (an un-void being filled): retried next time.
        if len(due) < ROUND or sealed < len(due):
            break
    if made:
        log.info("offline_numbers_voided", count=made)
    return made


async def void_scheduler(db: Database, settings: Settings) -> None:
    await every(settings.offline_void_interval_seconds, lambda: void_due_blocks(db, settings), log,
                "offline_void_scheduler_failed")
