"""What the connectors give the analytics summary: orders received vs invoiced in the asked window.

Registered with ``analytics.service`` when this module is imported (the composition root imports
``connectors.tasks``, which imports this): analytics sits below the connectors and knows nothing of them.
An order counts in the window of the day it was first seen; its status is what it became since.
"""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.analytics import service as analytics
from stalela.connectors.repository import ConnectionRepository, OrderRepository
from stalela.connectors.service import STATUSES


async def figures(session: AsyncSession, window: Any, interval: str) -> dict[str, Any] | None:
    connections = [c for c in await ConnectionRepository(session).of_tenant()
                   if window.outlet_id is None or c.outlet_id == window.outlet_id]
    if not connections:
        return None
    start = datetime.combine(window.start, time(), timezone.utc)
    end = datetime.combine(window.end + timedelta(days=1), time(), timezone.utc)
    counts = await OrderRepository(session).counts_between(start, end)
    rows, totals = [], dict.fromkeys(STATUSES, 0)
    for c in connections:
        mine = counts.get(c.id, {})
        for status in STATUSES:
            totals[status] += mine.get(status, 0)
        rows.append({"connection_id": c.id, "platform": c.platform, "shop": c.shop, "status": c.status,
                     "orders": sum(mine.values()), **{s: mine.get(s, 0) for s in STATUSES}})
    orders = sum(totals.values())
    # Of the orders that should be invoiced (paid ones: not pending, not skipped), how many were.
    due = orders - totals["pending"] - totals["skipped"]
    rate = (Decimal(totals["invoiced"] + totals["credited"]) / due).quantize(Decimal("0.0001")) if due else None
    return {"orders": orders, **totals, "invoiced_rate": str(rate) if rate is not None else None,
            "by_connection": rows}


analytics.connector_figures = figures
