"""All SQL of anomaly detection: the usage history it reads, the tenant's overrides, the anomalies.

Tenant-bound sessions get the tenant filter added for us; the two platform reads (tenants with usage
on a day, every tenant's anomalies) run on a platform-bound session.
"""
from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from stalela.billing.anomaly import WINDOW_DAYS
from stalela.billing.anomaly_models import UsageAnomaly
from stalela.billing.rating_models import BillingAccount
from stalela.billing.usage_models import UsageDaily
from stalela.db.repository import Repository


class AnomalyRepository(Repository[UsageAnomaly]):
    model = UsageAnomaly

    # --- what detection reads ----------------------------------------------------------------------

    async def overrides(self) -> tuple[str | None, str | None]:
        """The tenant's (threshold, method) overrides; (None, None) without a billing account."""
        stmt = select(BillingAccount.anomaly_threshold, BillingAccount.anomaly_method)
        row = (await self.session.execute(stmt)).first()
        return (row[0], row[1]) if row else (None, None)

    async def history(self, day: date) -> dict[str, dict[date, int]]:
        """Per resource used on ``day``: its daily quantities (minor units) over the window and the day."""
        stmt = (select(UsageDaily.resource, UsageDaily.day, UsageDaily.quantity_units)
                .where(UsageDaily.day >= day - timedelta(days=WINDOW_DAYS), UsageDaily.day <= day))
        out: dict[str, dict[date, int]] = {}
        for resource, on, units in (await self.session.execute(stmt)).all():
            out.setdefault(resource, {})[on] = units
        # A resource unused that day cannot rise that day: at most 29 rows a resource were read for it.
        return {resource: days for resource, days in out.items() if days.get(day)}

    async def first_days(self, resources: list[str], before: date) -> dict[str, date]:
        """Each resource's first day with usage (the start of its history), before ``before``."""
        if not resources:
            return {}
        stmt = (select(UsageDaily.resource, func.min(UsageDaily.day))
                .where(UsageDaily.resource.in_(resources), UsageDaily.quantity_units != 0, UsageDaily.day < before)
                .group_by(UsageDaily.resource))
        return {resource: first for resource, first in (await self.session.execute(stmt)).all()}

    async def used_between(self, resource: str, first: date, before: date) -> int:
        """The resource's usage (minor units) over [first, before): the period so far, for the impact."""
        stmt = select(func.coalesce(func.sum(UsageDaily.quantity_units), 0)).where(
            UsageDaily.resource == resource, UsageDaily.day >= first, UsageDaily.day < before)
        return int((await self.session.execute(stmt)).scalar_one())

    async def tenants_used_on(self, day: date) -> list[str]:
        """Platform-bound: the tenants with some usage on ``day`` (only they can have a rise that day)."""
        stmt = (select(UsageDaily.tenant_id).where(UsageDaily.day == day, UsageDaily.quantity_units != 0)
                .distinct().order_by(UsageDaily.tenant_id))
        return list((await self.session.execute(stmt)).scalars())

    # --- the anomalies -----------------------------------------------------------------------------

    async def insert_new(self, rows: list[dict[str, Any]]) -> list[str]:
        """Insert anomalies, skipping any (tenant, resource, day) already stored; returns the new ids.

        ON CONFLICT DO NOTHING on both databases: a concurrent run's insert of the same key waits for
        the first to commit (PostgreSQL) or is serialised by the write lock (SQLite), then adds nothing."""
        if not rows:
            return []
        insert = pg_insert if self.session.bind.dialect.name == "postgresql" else sqlite_insert
        stmt = (insert(UsageAnomaly).values(rows)
                .on_conflict_do_nothing(index_elements=["tenant_id", "resource", "day"])
                .returning(UsageAnomaly.id))
        return list((await self.session.execute(stmt)).scalars())

    async def locked(self, anomaly_id: str) -> UsageAnomaly | None:
        stmt = (select(UsageAnomaly).where(UsageAnomaly.id == anomaly_id).with_for_update()
                .execution_options(populate_existing=True))
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def page_by_status(self, status: str | None, limit: int,
                             starting_after: str | None) -> tuple[list[UsageAnomaly], bool]:
        """Newest first. On a platform-bound session: every tenant's (the operator's view)."""
        scope = stmt = select(UsageAnomaly)
        if status is not None:
            stmt = stmt.where(UsageAnomaly.status == status)
        return await self.page(stmt, limit=limit, starting_after=starting_after, scope=scope)
