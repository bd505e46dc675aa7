"""All SQL of plans, rate cards, billing accounts and the sealed-invoice count of the seal quota.

Plans and rate cards are platform rows (no tenant); ``billing_accounts`` is tenant-owned, so reads
name the tenant explicitly: they run on the operator's platform session as well as on a tenant's.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.billing.rating_models import BillingAccount, BillingPlan, RateCard
from stalela.fiscal.invoices.models import Invoice
from stalela.tenancy.models import Tenant

DEFAULT_PLAN = "default"


class PlanRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, plan_id: str, *, lock: bool = False) -> BillingPlan | None:
        stmt = select(BillingPlan).where(BillingPlan.id == plan_id)
        if lock:  # serialises the plan's new versions (their numbers)
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def all(self) -> list[BillingPlan]:
        return list((await self.session.execute(select(BillingPlan).order_by(BillingPlan.id))).scalars())

    async def add(self, plan: BillingPlan) -> None:
        self.session.add(plan)
        await self.session.flush()

    async def quotas_of_tenant(self, tenant_id: str) -> str | None:
        """The caps of the tenant's plan (``default`` without an account), in one statement."""
        chosen = (select(BillingAccount.plan_id).where(BillingAccount.tenant_id == tenant_id)
                  .scalar_subquery())
        stmt = select(BillingPlan.quotas).where(BillingPlan.id == func.coalesce(chosen, DEFAULT_PLAN))
        return (await self.session.execute(stmt)).scalar_one_or_none()


class RateCardRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, plan_id: str, version: int) -> RateCard | None:
        stmt = select(RateCard).where(RateCard.plan_id == plan_id, RateCard.version == version)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def of_plan(self, plan_id: str) -> list[RateCard]:
        stmt = select(RateCard).where(RateCard.plan_id == plan_id).order_by(RateCard.version)
        return list((await self.session.execute(stmt)).scalars())

    async def latest(self, plan_id: str) -> RateCard | None:
        stmt = select(RateCard).where(RateCard.plan_id == plan_id).order_by(RateCard.version.desc()).limit(1)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def last_used_at(self, plan_id: str) -> datetime | None:
        stmt = select(func.max(RateCard.used_at)).where(RateCard.plan_id == plan_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def in_force(self, plan_id: str, day: date) -> RateCard | None:
        stmt = (select(RateCard).where(RateCard.plan_id == plan_id, RateCard.effective_from <= day)
                .order_by(RateCard.effective_from.desc()).limit(1))
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def add(self, card: RateCard) -> None:
        self.session.add(card)
        await self.session.flush()

    async def mark_used(self, plan_id: str, version: int, now: datetime) -> int:
        """Stamps the first use only: ``used_at`` says since when the card may no longer change."""
        stmt = (update(RateCard).where(RateCard.plan_id == plan_id, RateCard.version == version,
                                       RateCard.used_at.is_(None)).values(used_at=now))
        return (await self.session.execute(stmt)).rowcount

    async def delete_unused(self, plan_id: str, version: int) -> int:
        stmt = delete(RateCard).where(RateCard.plan_id == plan_id, RateCard.version == version,
                                      RateCard.used_at.is_(None))
        return (await self.session.execute(stmt)).rowcount


class AccountRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, tenant_id: str) -> BillingAccount | None:
        stmt = select(BillingAccount).where(BillingAccount.tenant_id == tenant_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def add(self, account: BillingAccount) -> None:
        self.session.add(account)
        await self.session.flush()

    async def tenant_exists(self, tenant_id: str) -> bool:
        stmt = select(Tenant.id).where(Tenant.id == tenant_id)
        return (await self.session.execute(stmt)).scalar_one_or_none() is not None


async def invoices_issued(session: AsyncSession, tenant_id: str, start: datetime, end: datetime) -> int:
    """The tenant's sealed documents issued in [start, end): the exact count a quota is checked against
    (served by the index on tenant and issue time)."""
    stmt = select(func.count()).select_from(Invoice).where(
        Invoice.tenant_id == tenant_id, Invoice.issued_at >= start, Invoice.issued_at < end)
    return (await session.execute(stmt)).scalar_one()

