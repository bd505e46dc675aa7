"""The control plane's outbox handlers: provisioning jobs (and moves, moves.py)."""
from __future__ import annotations

from stalela.controlplane import provisioning
from stalela.outbox.registry import Event, HandlerContext, handles


@handles(provisioning.TOPIC)
async def provision(ctx: HandlerContext, event: Event) -> None:
    # Resumes from the step the job reached: a retry after a crash continues, never starts over.
    await provisioning.run(ctx.db, ctx.settings, event.payload["tenant_id"])
