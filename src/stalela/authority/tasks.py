"""Outbox handlers of the authority domain: the sync agents (the DGI's, ARCA's)."""
from __future__ import annotations

from stalela.authority import service
from stalela.authority.arca import agent as arca_agent
from stalela.authority.repository import AuthorityRepository
from stalela.db.session import Database
from stalela.outbox.registry import Event, HandlerContext, handles
from stalela.outbox.service import enqueue
from stalela.tenancy.context import bind_tenant
from stalela.tenancy.repository import TenantRepository

# A tenant's jurisdiction never changes: read once per process.
_jurisdictions: dict[str, str] = {}


async def _jurisdiction(db: Database, tenant_id: str) -> str | None:
    if tenant_id not in _jurisdictions:
        async with db.transaction(readonly=True) as session:
            await bind_tenant(session, tenant_id)  # row-level security shows a tenant its own row only
            tenant = await TenantRepository(session).get(tenant_id)
        if tenant is None:
            return None
        _jurisdictions[tenant_id] = tenant.jurisdiction
    return _jurisdictions[tenant_id]


@handles("invoice.sealed")
@handles("authority.sync")
async def sync_invoice(ctx: HandlerContext, event: Event) -> None:
    if await _jurisdiction(ctx.db, event.tenant_id) == "AR":
        await arca_agent.sync_invoice(ctx.db, ctx.settings, event.tenant_id, event.payload["invoice_id"])
    else:
        await service.sync_invoice(ctx.db, ctx.settings, event.tenant_id, event.payload["invoice_id"])


@handles("authority.resync")
async def resync_outlet(ctx: HandlerContext, event: Event) -> None:
    """A device was registered or fixed: queue every invoice of the outlet still waiting."""
    async with ctx.db.transaction() as session:
        await bind_tenant(session, event.tenant_id)
        for invoice_id in await AuthorityRepository(session).waiting_invoices(event.payload["outlet_id"]):
            enqueue(session, event.tenant_id, "authority.sync", {"invoice_id": invoice_id})
