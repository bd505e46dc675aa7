"""``tenant_resource_usage{tenant_id,resource}``: each tenant's usage of the current calendar month (UTC),
from the daily aggregates, set at scrape time. Counters are sums, gauges unit-days (what a bill rates).
With tenant labels off (``STALELA_METRICS_TENANT_LABELS=false``) the tenants fold into one series per
resource."""
from __future__ import annotations

from prometheus_client.core import Metric

from stalela.billing import usage_service
from stalela.billing.usage_repository import UsageRepository
from stalela.observability.metrics import TENANT_RESOURCE_USAGE, tenant_label
from stalela.observability.scrape import ScrapeContext, scrape_figures
from stalela.tenancy.context import bind_platform


@scrape_figures
async def tenant_resource_usage(ctx: ScrapeContext) -> list[Metric]:
    month = usage_service.clock.now().date().replace(day=1)
    async with ctx.db.transaction(readonly=True) as session:
        await bind_platform(session)
        totals = await UsageRepository(session).month_totals(month)
    figures: dict[tuple[str, str], float] = {}
    for tenant_id, resource, units in totals:
        key = (tenant_label(tenant_id), resource)
        figures[key] = figures.get(key, 0.0) + float(usage_service.quantity_text(resource, units))
    # The process gauge (registered in the metrics catalog) is set here, not kept up to date by the hot paths.
    # Series that went away (a new month) drop to 0: labels cannot be removed in multiprocess mode.
    for tenant, resource in ctx.memory.get("usage_series", set()) - set(figures):
        TENANT_RESOURCE_USAGE.labels(tenant, resource).set(0)
    for (tenant, resource), value in figures.items():
        TENANT_RESOURCE_USAGE.labels(tenant, resource).set(value)
    ctx.memory["usage_series"] = set(figures)
    return []
