"""Tenancy's scrape-time gauge: tenants by status."""
from __future__ import annotations

from prometheus_client.core import Metric
from sqlalchemy import func, select

from stalela.observability.scrape import ScrapeContext, database_gauge, scrape_figures
from stalela.tenancy.context import bind_platform
from stalela.tenancy.models import Tenant


@scrape_figures
async def tenant_count(ctx: ScrapeContext) -> list[Metric]:
    tenants = database_gauge("tenant_count")
    async with ctx.db.transaction(readonly=True) as session:
        await bind_platform(session)
        for status, count in await session.execute(select(Tenant.status, func.count()).group_by(Tenant.status)):
            tenants.add_metric([status], count)
    return [tenants]
