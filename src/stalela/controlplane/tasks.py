"""The control plane's outbox handlers: provisioning jobs (and moves, moves.py)."""
from __future__ import annotations

from stalela.controlplane import move_service, moves, provisioning
from stalela.outbox.registry import Event, HandlerContext, handles


@handles(provisioning.TOPIC)
async def provision(ctx: HandlerContext, event: Event) -> None:
    # Resumes from the step the job reached: a retry after a crash continues, never starts over.
    await provisioning.run(ctx.db, ctx.settings, event.payload["tenant_id"])


@handles(moves.TOPIC)
async def move(ctx: HandlerContext, event: Event) -> None:
    # Idempotent: a move re-run after a crash copies by diff, or only writes the receipt if it had switched.
    await moves.run(ctx.db, ctx.settings, event.payload["tenant_id"], event.payload["move_id"])


@handles(move_service.PURGE_TOPIC)
async def purge(ctx: HandlerContext, event: Event) -> None:
    await moves.purge(ctx.db, ctx.settings, event.payload["tenant_id"], event.payload["move_id"])
