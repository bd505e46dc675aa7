"""Outbox handler of erasure: ``privacy.erasure_requested`` (idempotent: a completed request is skipped)."""
from __future__ import annotations

from stalela.outbox.registry import Event, HandlerContext, handles
from stalela.privacy import erasure_service


@handles(erasure_service.TOPIC)
async def erasure_requested(ctx: HandlerContext, event: Event) -> None:
    await erasure_service.process(ctx.db, ctx.settings, event.tenant_id, event.payload["request_id"])
    await ctx.db.scrub()
