"""The sync agent's scrape-time gauges: invoices not yet acknowledged, and the oldest one's age (sync lag)."""
from __future__ import annotations

from prometheus_client.core import Metric
from sqlalchemy import func, select

from stalela.fiscal.invoices.models import InvoiceSync
from stalela.db.base import utcnow
from stalela.observability.scrape import ScrapeContext, database_gauge, scrape_figures
from stalela.tenancy.context import bind_platform


@scrape_figures
async def sync_backlog(ctx: ScrapeContext) -> list[Metric]:
    sync_pending, sync_oldest = database_gauge("authority_sync_pending"), database_gauge(
        "authority_sync_oldest_pending_seconds")
    now = utcnow()
    oldest_sealed = None
    async with ctx.db.transaction(readonly=True) as session:
        await bind_platform(session)
        for status, count, first in await session.execute(
                select(InvoiceSync.status, func.count(), func.min(InvoiceSync.sealed_at))
                .where(InvoiceSync.status != "acknowledged").group_by(InvoiceSync.status)):
            sync_pending.add_metric([status], count)
            if status == "pending" and first is not None:
                oldest_sealed = first
    sync_oldest.add_metric([], (now - oldest_sealed).total_seconds() if oldest_sealed else 0.0)
    return [sync_pending, sync_oldest]
