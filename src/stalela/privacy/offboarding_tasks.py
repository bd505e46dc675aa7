"""The offboarding's outbox handler (one step per event) and the sweep of archive keys past their end."""
from __future__ import annotations

import asyncio
import os
from datetime import datetime, timezone

from stalela.config import Settings
from stalela.db.session import Database
from stalela.observability.logging import get_logger
from stalela.observability.metrics import PRIVACY_REQUESTS
from stalela.outbox.registry import Event, HandlerContext, RetryLater, handles
from stalela.privacy import offboarding_service as service
from stalela.tenancy.context import bind_platform, bind_tenant

log = get_logger("stalela.privacy.offboarding")


@handles(service.TOPIC)
async def offboarding_step(ctx: HandlerContext, event: Event) -> None:
    step = event.payload["step"]
    async with ctx.db.transaction() as session:
        await bind_tenant(session, event.tenant_id)
        outcome = await service.advance(session, ctx.settings, event.tenant_id, event.payload["offboarding_id"], step)
        if outcome.cleanup is not None:
            # Before the commit: if it fails, the step (and its table purge) runs again; both are idempotent.
            await _purge_outside(ctx.settings, outcome.cleanup)
    if outcome.retry_after is not None:
        # After the commit: a failed export's replacement request must be kept.
        raise RetryLater(f"offboarding: export not ready for {step}", outcome.retry_after)
    if not outcome.advanced:
        return
    log.info("offboarding_step", tenant_id=event.tenant_id, step=step)
    if step == "deleted":
        PRIVACY_REQUESTS.labels("offboarding", "completed").inc()
    if ctx.settings.offboarding_exit_after_step == step:
        os._exit(137)  # the kill -9 test: dead right after the commit, before the event is marked done


async def _purge_outside(settings: Settings, cleanup: service.Cleanup) -> None:
    for path in cleanup.files:
        path.unlink(missing_ok=True)
    if settings.redis_url and cleanup.redis_keys:
        import redis.asyncio as redis

        client = redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
        try:
            await client.delete(*cleanup.redis_keys)
        finally:
            await client.aclose()


async def sweep_archive_keys(db: Database, settings: Settings) -> list[str]:
    async with db.transaction() as session:
        await bind_platform(session)
        return await service.destroy_due_keys(session, settings, datetime.now(timezone.utc).date())


async def archive_key_sweeper(db: Database, settings: Settings) -> None:
    """A worker loop: idempotent (a destroyed key is no longer due), so every worker may run it."""
    while True:
        try:
            destroyed = await sweep_archive_keys(db, settings)
            if destroyed:
                log.info("archive_keys_destroyed", count=len(destroyed))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("archive_key_sweep_failed")
        await asyncio.sleep(settings.offboarding_key_sweep_seconds)
