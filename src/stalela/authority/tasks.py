"""Outbox handlers of the authority domain (the DGI sync agent)."""
from __future__ import annotations

from stalela.authority import service
from stalela.authority.repository import AuthorityRepository
from stalela.outbox.registry import Event, HandlerContext, handles
from stalela.outbox.service import enqueue
from stalela.tenancy.context import bind_tenant


@handles("invoice.sealed")
@handles("authority.sync")
async def sync_invoice(ctx: HandlerContext, event: Event) -> None:
    await service.sync_invoice(ctx.db, ctx.settings, event.tenant_id, event.payload["invoice_id"])


@handles("authority.resync")
async def resync_outlet(ctx: HandlerContext, event: Event) -> None:
    """A device was registered or fixed: queue every invoice of the outlet still waiting."""
    async with ctx.db.transaction() as session:
        await bind_tenant(session, event.tenant_id)
        for invoice_id in await AuthorityRepository(session).waiting_invoices(event.payload["outlet_id"]):
            enqueue(session, event.tenant_id, "authority.sync", {"invoice_id": invoice_id})
