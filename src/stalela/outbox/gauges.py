"""The outbox's scrape-time gauges: pending events, the oldest one's age and dead letters, per topic."""
from __future__ import annotations

from prometheus_client.core import Metric

from stalela.observability.scrape import ScrapeContext, database_gauge, scrape_figures
from stalela.outbox.registry import consumed_topics
from stalela.outbox.repository import OutboxRepository
from stalela.tenancy.context import bind_platform


@scrape_figures
async def outbox_depth(ctx: ScrapeContext) -> list[Metric]:
    pending, oldest, dead = (database_gauge("outbox_pending"), database_gauge("outbox_oldest_pending_seconds"),
                             database_gauge("outbox_dead_letters"))
    async with ctx.db.transaction(readonly=True) as session:
        await bind_platform(session)
        rows = {row["topic"]: row for row in await OutboxRepository(session).stats()}
    # A consumed topic, or one seen once, reads 0 when nothing is pending rather than being absent.
    topics: set[str] = ctx.memory.setdefault("topics", set())
    topics.update(rows)
    topics.update(consumed_topics())
    for topic in sorted(topics):
        row = rows.get(topic) or {"pending": 0, "dead": 0, "oldest_pending_seconds": None}
        pending.add_metric([topic], row["pending"])
        dead.add_metric([topic], row["dead"])
        oldest.add_metric([topic], row["oldest_pending_seconds"] or 0.0)
    return [pending, oldest, dead]
