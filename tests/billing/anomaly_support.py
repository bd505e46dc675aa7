"""Helpers of the anomaly tests: a tenant's daily usage written straight into ``usage_daily``."""
from __future__ import annotations

import uuid
from datetime import date, timedelta

from sqlalchemy import select

from stalela.billing.anomaly_models import UsageAnomaly
from stalela.billing.rating_models import BillingAccount, BillingPlan
from stalela.billing.usage_models import UsageDaily
from stalela.db.session import Database
from stalela.outbox.models import OutboxEvent
from stalela.tenancy.context import bind_platform, bind_tenant

DAY = date(2026, 11, 30)
TOPIC = "billing.anomaly_detected"


def spike_series(days: int = 35, level: int = 100, spike: int = 1000) -> list[int]:
    """``days`` days of ``level`` (±2) ending in a spike on the last one (DAY)."""
    return [level + (i * 7 % 5) - 2 for i in range(days - 1)] + [spike]


async def write_usage(db: Database, tenant_id: str, resource: str, values: list[int], last: date = DAY) -> None:
    """``values`` as the daily minor units of ``resource``, the last one on ``last``."""
    first = last - timedelta(days=len(values) - 1)
    async with db.transaction() as session:
        await bind_tenant(session, tenant_id)
        session.add_all([UsageDaily(tenant_id=tenant_id, resource=resource, day=first + timedelta(days=i),
                                    quantity_units=v, event_count=1, events_digest="0" * 64)
                         for i, v in enumerate(values) if v])


async def set_overrides(db: Database, tenant_id: str, threshold: str | None, method: str | None) -> None:
    plan_id = f"anomaly-{uuid.uuid4().hex[:12]}"
    async with db.transaction() as session:
        await bind_platform(session)
        session.add(BillingPlan(id=plan_id, name="Anomaly tests", currency="EUR"))
    async with db.transaction() as session:
        await bind_tenant(session, tenant_id)
        session.add(BillingAccount(tenant_id=tenant_id, plan_id=plan_id, anomaly_threshold=threshold,
                                   anomaly_method=method))


async def stored(db: Database, tenant_id: str) -> tuple[list[UsageAnomaly], list[OutboxEvent]]:
    async with db.transaction(readonly=True) as session:
        await bind_tenant(session, tenant_id)
        anomalies = list((await session.execute(select(UsageAnomaly).order_by(UsageAnomaly.day))).scalars())
        events = list((await session.execute(select(OutboxEvent).where(OutboxEvent.topic == TOPIC))).scalars())
        return anomalies, events


def new_tenant_id() -> str:
    return f"ten_anom{uuid.uuid4().hex[:16]}"
