"""The sealing pipeline's scrape-time gauge: the last fiscal counter handed out, per outlet."""
from __future__ import annotations

from prometheus_client.core import Metric

from stalela.fiscal.invoices.repository import SeriesRepository
from stalela.observability.scrape import ScrapeContext, database_gauge, scrape_figures
from stalela.tenancy.context import bind_platform


@scrape_figures
async def fiscal_counters(ctx: ScrapeContext) -> list[Metric]:
    counters = database_gauge("fiscal_counter_value")
    if ctx.tenant_labels:  # one series per outlet: left out where tenant labels are turned off
        async with ctx.db.transaction(readonly=True) as session:
            await bind_platform(session)
            for tenant_id, outlet_id, counter in await SeriesRepository(session).last_counters():
                counters.add_metric([tenant_id, outlet_id], counter or 0)
    return [counters]
