"""The control plane's outbox handlers: provisioning jobs (and moves, moves.py)."""
from __future__ import annotations

from stalela.controlplane import move_service, moves, provisioning
from stalela.outbox.registry import Event, HandlerContext, RetryLater, handles

# Another runner holds the job (`stalela tenant create --wait`, or a second delivery): look again soon.
BUSY_RETRY_SECONDS = 2.0


@handles(provisioning.TOPIC)
async def provision(ctx: HandlerContext, event: Event) -> None:
    # Resumes from the step the job reached: a retry after a crash continues, never starts over. The job
    # fails visibly with the event's last attempt (the outbox then buries it); replaying the dead event
    # resumes it.
    try:
        await provisioning.run(ctx.db, ctx.settings, event.payload["tenant_id"], resume_failed=True,
                               final_attempt=event.attempts >= ctx.settings.outbox_max_attempts)
    except provisioning.Busy:
        raise RetryLater("another runner is provisioning this tenant", BUSY_RETRY_SECONDS) from None


@handles(moves.TOPIC)
async def move(ctx: HandlerContext, event: Event) -> None:
    # Idempotent: a move re-run after a crash copies by diff, or only writes the receipt if it had switched.
    await moves.run(ctx.db, ctx.settings, event.payload["tenant_id"], event.payload["move_id"])


@handles(move_service.PURGE_TOPIC)
async def purge(ctx: HandlerContext, event: Event) -> None:
    await moves.purge(ctx.db, ctx.settings, event.payload["tenant_id"], event.payload["move_id"])
