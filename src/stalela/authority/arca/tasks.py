"""Outbox handlers of ARCA's side of the authority domain."""
from __future__ import annotations

from stalela.authority.arca import series
from stalela.outbox.registry import Event, HandlerContext, handles


@handles("arca.credentials_saved")
@handles("arca.point_of_sale_created")
async def credentials_saved(ctx: HandlerContext, event: Event) -> None:
    """New credentials or a new point of sale: align the series that have numbered nothing yet with ARCA, then send what waited."""
    await series.align_and_resync(ctx.db, ctx.settings, event.tenant_id)
