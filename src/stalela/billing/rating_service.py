"""Plans, versioned rate cards and billing accounts: the operator's use cases, and what the bills and
the anomaly detection read (``card_for``, ``mark_used``, ``account``). Flushes, never commits.

Rate cards are append-only: a price change is a new version with a later ``effective_from``. The
latest version may be deleted while no bill used it (a mistake caught in time); once a bill used a
card (``used_at``) nothing may change it, and no new version may take effect on a day up to that use
(a bill may have priced that day) nor on or before the last day of the latest period a closed bill
priced with the plan (``BillRepository.last_priced_day``). Every other change is refused with 409.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.billing import quota_cache, rating, resources
from stalela.billing.bill_repository import BillRepository
from stalela.billing.rating_models import BillingAccount, BillingPlan, RateCard
from stalela.billing.rating_repository import DEFAULT_PLAN, AccountRepository, PlanRepository, RateCardRepository
from stalela.billing.rating_schemas import AccountUpdate, PlanCreate, PlanUpdate, RateCardCreate
from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.kit.money import decimal_str
from stalela.errors import Conflict, NotFound, ValidationFailed
from stalela.kit import canonical

@dataclass(frozen=True)
class AccountView:
    tenant_id: str
    plan_id: str
    quotas: dict[str, Decimal] = field(default_factory=dict)
    anomaly_threshold: Decimal | None = None
    anomaly_method: str | None = None


# --- plans ---------------------------------------------------------------------------------------


def _quotas_json(settings: Settings, quotas: dict[str, Decimal] | None) -> str | None:
    if not quotas:
        return None
    _check_resources(settings, quotas, "quotas")
    return canonical.dumps({k: decimal_str(v) for k, v in sorted(quotas.items())}).decode()


def _check_resources(settings: Settings, names, where: str) -> None:  # noqa: ANN001
    known = resources.all_resources(settings)
    for name in names:
        resources.lookup(known, name, field=f"{where}.{name}")


async def create_plan(session: AsyncSession, settings: Settings, data: PlanCreate) -> BillingPlan:
    plans = PlanRepository(session)
    if await plans.get(data.id) is not None:
        raise Conflict(f"plan {data.id!r} exists", code="plan_exists", field="id")
    now = utcnow()
    plan = BillingPlan(id=data.id, name=data.name, currency=data.currency,
                       quotas=_quotas_json(settings, data.quotas), created_at=now, updated_at=now)
    await plans.add(plan)
    return plan


async def list_plans(session: AsyncSession) -> list[BillingPlan]:
    return await PlanRepository(session).all()


async def get_plan(session: AsyncSession, plan_id: str, *, lock: bool = False) -> BillingPlan:
    plan = await PlanRepository(session).get(plan_id, lock=lock)
    if plan is None:
        raise NotFound(f"no plan {plan_id!r}", code="plan_not_found")
    return plan


async def update_plan(session: AsyncSession, settings: Settings, plan_id: str, data: PlanUpdate) -> BillingPlan:
    """Name and quotas only: the currency is fixed (its rate cards are priced in it)."""
    plan = await get_plan(session, plan_id, lock=True)
    changes = data.model_dump(exclude_unset=True)
    if "name" in changes:
        if data.name is None:
            raise ValidationFailed("name cannot be null", code="field_not_nullable", field="name")
        plan.name = data.name
    if "quotas" in changes:
        plan.quotas = _quotas_json(settings, data.quotas)
    plan.updated_at = utcnow()
    await session.flush()
    quota_cache.forget()
    return plan


# --- rate cards ----------------------------------------------------------------------------------


def card_view(card: RateCard, currency: str) -> rating.RateCardView:
    prices = {name: rating.PriceEntry.from_json(name, entry) for name, entry in json.loads(card.prices).items()}
    return rating.RateCardView(card.plan_id, card.version, currency, card.effective_from, prices)


async def add_rate_card(session: AsyncSession, settings: Settings, plan_id: str, data: RateCardCreate) -> RateCard:
    """The plan's next version, in force from ``effective_from`` until a later version's."""
    await get_plan(session, plan_id, lock=True)  # one new version of a plan at a time
    _check_resources(settings, data.prices, "prices")
    cards = RateCardRepository(session)
    latest = await cards.latest(plan_id)
    if latest is not None and data.effective_from <= latest.effective_from:
        raise Conflict(f"effective_from must be after the latest version's ({latest.effective_from}, "
                       f"v{latest.version})", code="rate_card_not_after_latest", field="effective_from")
    used = await cards.last_used_at(plan_id)
    if used is not None and data.effective_from <= used.date():
        raise Conflict(f"a bill already used this plan's prices on {used.date()}: a new version takes effect "
                       "after that day", code="rate_card_in_use", field="effective_from")
    # The first use's date is not enough: a later bill (or adjustment) may have priced a later period.
    # A card may never claim a day a closed bill already priced with this plan.
    priced = await BillRepository(session).last_priced_day(plan_id)
    if priced is not None and data.effective_from <= priced:
        raise Conflict(f"a closed bill priced this plan's usage up to {priced}: a new version takes effect after "
                       "that day", code="rate_card_in_use", field="effective_from")
    prices = {name: entry.to_entry(name).as_json() for name, entry in sorted(data.prices.items())}
    card = RateCard(plan_id=plan_id, version=(latest.version + 1) if latest else 1,
                    effective_from=data.effective_from, prices=canonical.dumps(prices).decode(), created_at=utcnow())
    await cards.add(card)
    return card


async def list_rate_cards(session: AsyncSession, plan_id: str) -> list[RateCard]:
    await get_plan(session, plan_id)
    return await RateCardRepository(session).of_plan(plan_id)


async def get_rate_card(session: AsyncSession, plan_id: str, version: int) -> RateCard:
    card = await RateCardRepository(session).get(plan_id, version)
    if card is None:
        raise NotFound(f"plan {plan_id!r} has no rate card version {version}", code="rate_card_not_found")
    return card


async def delete_rate_card(session: AsyncSession, plan_id: str, version: int) -> None:
    """Only the latest version, and only while no bill used it."""
    await get_plan(session, plan_id, lock=True)
    card = await get_rate_card(session, plan_id, version)
    cards = RateCardRepository(session)
    if card.used_at is not None:
        raise Conflict(f"rate card v{version} was used by a bill on {card.used_at.date()}: it is immutable",
                       code="rate_card_immutable")
    latest = await cards.latest(plan_id)
    if latest is not None and latest.version != version:
        raise Conflict(f"only the latest version (v{latest.version}) may be deleted", code="rate_card_not_latest")
    await cards.delete_unused(plan_id, version)


async def card_for(session: AsyncSession, tenant_id: str, day: date) -> rating.RateCardView:
    """The rate card of the tenant's plan in force on ``day``."""
    row = await AccountRepository(session).get(tenant_id)  # the plan alone: not account()'s plan read too
    plan_id = row.plan_id if row is not None else DEFAULT_PLAN
    plan = await get_plan(session, plan_id)
    card = await RateCardRepository(session).in_force(plan_id, day)
    if card is None:
        raise Conflict(f"plan {plan_id!r} has no rate card in force on {day}", code="rate_card_not_in_force")
    return card_view(card, plan.currency)


async def card_version(session: AsyncSession, plan_id: str, version: int) -> rating.RateCardView:
    """One recorded version: what re-prices a closed period with the card that priced it."""
    card = await get_rate_card(session, plan_id, version)
    return card_view(card, (await get_plan(session, plan_id)).currency)


async def mark_used(session: AsyncSession, plan_id: str, version: int) -> None:
    """A bill used this card: from now on it is immutable. Idempotent (the first use is kept)."""
    await RateCardRepository(session).mark_used(plan_id, version, utcnow())


# --- accounts ------------------------------------------------------------------------------------


async def account(session: AsyncSession, tenant_id: str) -> AccountView:
    """The tenant's plan and anomaly overrides; a tenant without an account is on ``default``."""
    row = await AccountRepository(session).get(tenant_id)
    plan_id = row.plan_id if row is not None else DEFAULT_PLAN
    plan = await PlanRepository(session).get(plan_id)
    return AccountView(tenant_id, plan_id, quota_cache.parse_quotas(plan.quotas if plan else None),
                       Decimal(row.anomaly_threshold) if row and row.anomaly_threshold else None,
                       row.anomaly_method if row else None)


async def tenant_account(session: AsyncSession, tenant_id: str) -> AccountView:
    if not await AccountRepository(session).tenant_exists(tenant_id):
        raise NotFound("no such tenant", code="tenant_not_found")
    return await account(session, tenant_id)


async def assign(session: AsyncSession, tenant_id: str, data: AccountUpdate) -> AccountView:
    """Put a tenant on a plan (and set its anomaly overrides): the whole account, as PUT says."""
    accounts = AccountRepository(session)
    await tenant_account(session, tenant_id)
    if await PlanRepository(session).get(data.plan_id) is None:
        raise ValidationFailed(f"no plan {data.plan_id!r}", code="plan_not_found", field="plan_id")
    now = utcnow()
    threshold = decimal_str(data.anomaly_threshold) if data.anomaly_threshold is not None else None
    row = await accounts.get(tenant_id)
    if row is None:
        await accounts.add(BillingAccount(tenant_id=tenant_id, plan_id=data.plan_id, anomaly_threshold=threshold,
                                          anomaly_method=data.anomaly_method, created_at=now, updated_at=now))
    else:
        row.plan_id, row.anomaly_threshold, row.anomaly_method = data.plan_id, threshold, data.anomaly_method
        row.updated_at = now
        await session.flush()
    quota_cache.forget(tenant_id)
    return await account(session, tenant_id)
