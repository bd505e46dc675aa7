"""Outbox handlers of portability exports (build the archive, purge a file) and the expiry sweep.

Both handlers are idempotent: a build of an export that is no longer pending does nothing, and a purge
deletes a file that may already be gone. A build that keeps failing (``STALELA_EXPORT_MAX_ATTEMPTS``) is
recorded as failed instead of going on as a dead letter: the tenant sees why, and may ask again.
"""
from __future__ import annotations

import asyncio

from stalela.config import Settings
from stalela.db.session import Database
from stalela.observability.logging import get_logger
from stalela.db.base import utcnow
from stalela.outbox.registry import Event, HandlerContext, RetryLater, handles
from stalela.privacy import export_service as service

log = get_logger("stalela.privacy")


@handles(service.EXPORT_REQUESTED)
async def build_export(ctx: HandlerContext, event: Event) -> None:
    export_id = event.payload["export_id"]
    try:
        await service.build_export(ctx.db, ctx.settings, event.tenant_id, export_id)
    except service.BuildInProgress as busy:
        # Another worker got this event too (its lease ran out under a long build): look again once its
        # claim would have lapsed; by then it is ready (nothing to do) or its builder died (build it).
        wait = (busy.until - utcnow()).total_seconds() if busy.until else 60.0
        raise RetryLater(str(busy), max(1.0, wait)) from None
    except Exception as exc:
        if event.attempts < ctx.settings.export_max_attempts:
            raise  # the outbox retries, with backoff
        log.exception("privacy_export_failed", tenant_id=event.tenant_id, export_id=export_id)
        await service.fail_export(ctx.db, event.tenant_id, export_id, f"{type(exc).__name__}: {exc}")


@handles(service.EXPORT_PURGE)
async def purge_export_file(ctx: HandlerContext, event: Event) -> None:
    await service.purge_file(ctx.db, ctx.settings, event.tenant_id, event.payload["export_id"])


async def export_sweeper(db: Database, settings: Settings) -> None:
    """Expire ready exports past their link's lifetime (their files go through the purge handler)."""
    while True:
        await asyncio.sleep(settings.export_sweep_seconds)
        try:
            expired = await service.expire_due(db, settings)
            if expired:
                log.info("privacy_exports_expired", count=expired)
        except Exception:
            log.exception("privacy_export_sweep_failed")
