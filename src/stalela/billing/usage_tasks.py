"""Usage's background work: metering sealed invoices (a batch outbox handler), the hourly storage samples,
and the loop that refreshes the daily aggregates. Imported by ``stalela.workers``."""
from __future__ import annotations

import asyncio
from datetime import datetime

from stalela.billing import usage_service
from stalela.billing.usage_repository import UsageRepository
from stalela.config import Settings
from stalela.db.session import Database
from stalela.observability.logging import get_logger
from stalela.outbox.registry import Event, HandlerContext, handles_batch
from stalela.tenancy.context import bind_platform, bind_tenant

log = get_logger("stalela.billing")
STORAGE_SAMPLE_SECONDS = 3600


@handles_batch("invoice.sealed")
async def meter_sealed_invoices(ctx: HandlerContext, events: list[Event]) -> None:
    """One ``invoices_sealed`` event per invoice, id ``stalela:invoice:<invoice id>``: for the whole claimed
    batch in one transaction, off the seal's path."""
    if not ctx.settings.usage_metering:
        return
    rows = [(e.tenant_id, f"stalela:invoice:{e.payload['invoice_id']}", "invoices_sealed", 1,
             _when(e.payload.get("issued_at"))) for e in events if e.payload.get("invoice_id")]
    async with ctx.db.transaction() as session:
        await bind_platform(session)  # the rows name their tenants
        await usage_service.record_metered(session, rows)


def _when(issued_at: str | None) -> datetime:
    try:
        return datetime.fromisoformat(issued_at.replace("Z", "+00:00")) if issued_at else usage_service.clock.now()
    except ValueError:
        return usage_service.clock.now()


async def _tenants(db: Database) -> list[str]:
    async with db.transaction(readonly=True) as session:
        await bind_platform(session)
        return await UsageRepository(session).active_tenants()


async def sample_storage(db: Database, tenant_ids: list[str] | None = None) -> int:
    """One ``storage_bytes`` sample per tenant for the current hour (id ``stalela:storage:<YYYY-MM-DDTHH>``):
    a second run in the same hour records nothing. Returns the samples recorded."""
    now = usage_service.clock.now()
    hour = now.strftime("%Y-%m-%dT%H")
    recorded = 0
    for tenant_id in tenant_ids if tenant_ids is not None else await _tenants(db):
        try:
            async with db.transaction() as session:
                await bind_tenant(session, tenant_id)
                size = await UsageRepository(session, tenant_id).stored_bytes()
                recorded += await usage_service.record_metered(
                    session, [(tenant_id, f"stalela:storage:{hour}", "storage_bytes", size, now)])
        except Exception:
            log.exception("usage_storage_sample_failed", tenant_id=tenant_id)
    return recorded


async def aggregate_all(db: Database, tenant_ids: list[str] | None = None, start=None, end=None) -> dict[str, int]:  # noqa: ANN001
    """Refresh every tenant's daily aggregates, one transaction per tenant; returns rows written by tenant."""
    written: dict[str, int] = {}
    for tenant_id in tenant_ids if tenant_ids is not None else await _tenants(db):
        try:
            async with db.transaction() as session:
                await bind_tenant(session, tenant_id)
                written[tenant_id] = await usage_service.aggregate(session, tenant_id, start=start, end=end)
        except Exception:
            log.exception("usage_aggregation_failed", tenant_id=tenant_id)
            if tenant_ids is not None:
                raise
    return written


async def storage_sampler(db: Database, settings: Settings) -> None:
    """A worker loop (started only with ``usage_metering``)."""
    while True:
        try:
            await sample_storage(db)
        except Exception:  # the database may be away: the next hour's sample is taken all the same
            log.exception("usage_storage_sample_run_failed")
        await asyncio.sleep(STORAGE_SAMPLE_SECONDS)


async def aggregation_loop(db: Database, settings: Settings) -> None:
    while True:
        try:
            await aggregate_all(db)
        except Exception:  # the database may be away: try again next time
            log.exception("usage_aggregation_run_failed")
        await asyncio.sleep(settings.usage_aggregation_seconds)
