"""Outbox handlers of the webhooks domain: fan events out into messages, deliver each message."""
from __future__ import annotations

from stalela.outbox.registry import Event, HandlerContext, handles
from stalela.tenancy.context import bind_tenant
from stalela.webhooks import delivery, events, service
from stalela.webhooks.repository import EndpointRepository


@handles(events.INVOICE_SEALED)
@handles(events.INVOICE_ACKNOWLEDGED)
@handles(events.INVOICE_SYNC_FAILED)
@handles(events.REPORT_Z_CLOSED)
@handles(events.DISABLED_TOPIC)
@handles(events.BILLING_ANOMALY_DETECTED)
@handles(events.OFFLINE_NUMBERS_VOIDED)
@handles(events.OFFLINE_FORK_DETECTED)
async def fan_out(ctx: HandlerContext, event: Event) -> None:
    event_type = events.TOPICS[event.topic]
    # Most tenants have no endpoint: find out in a read transaction before taking the write lock.
    async with ctx.db.transaction(readonly=True) as session:
        await bind_tenant(session, event.tenant_id)
        if not any(service.subscribed(e, event_type) for e in await EndpointRepository(session).enabled()):
            return
    async with ctx.db.transaction() as session:
        await bind_tenant(session, event.tenant_id)
        await service.fan_out(session, event.tenant_id, event.id, event.topic, event.payload)


@handles(events.DELIVER_TOPIC)
async def deliver(ctx: HandlerContext, event: Event) -> None:
    await delivery.deliver(ctx.db, ctx.settings, event.tenant_id, event.payload["message_id"],
                           fresh=bool(event.payload.get("requeued")))
