"""Tenancy's scrape-time gauge: tenants by status."""
from __future__ import annotations

from prometheus_client.core import Metric

from stalela.observability.scrape import ScrapeContext, database_gauge, scrape_figures
from stalela.tenancy.context import bind_platform
from stalela.tenancy.repository import TenantRepository


@scrape_figures
async def tenant_count(ctx: ScrapeContext) -> list[Metric]:
    tenants = database_gauge("tenant_count")
    async with ctx.db.transaction(readonly=True) as session:
        await bind_platform(session)
        for status, count in await TenantRepository(session).count_by_status():
            tenants.add_metric([status], count)
    return [tenants]
