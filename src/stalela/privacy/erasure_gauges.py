"""Erasure's scrape-time gauge: the age of the oldest open privacy request (all tenants)."""
from __future__ import annotations

from prometheus_client.core import Metric

from stalela.observability.scrape import ScrapeContext, database_gauge, scrape_figures
from stalela.privacy.erasure_service import oldest_open_seconds
from stalela.tenancy.context import bind_platform


@scrape_figures
async def oldest_open_request(ctx: ScrapeContext) -> list[Metric]:
    gauge = database_gauge("privacy_oldest_open_request_seconds")
    async with ctx.db.transaction(readonly=True) as session:
        await bind_platform(session)
        gauge.add_metric([], await oldest_open_seconds(session))
    return [gauge]
