"""Plans, rate cards and billing accounts (operator API, ``/v1/ops/billing``) and the tenant's quotas
(``/v1/billing/quotas``)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from stalela.auth.dependencies import AppSettings, Can, DbSession, OperatorPrincipal
from stalela.auth.permissions import Perm
from stalela.billing import quota_cache, quotas, rating_schemas as schemas, rating_service as service
from stalela.billing.rating_models import BillingPlan, RateCard
from stalela.kit.jsonbody import JSONRoute
from stalela.kit.money import decimal_str
from stalela.kit.schemas import PathId

ops_router = APIRouter(route_class=JSONRoute, prefix="/v1/ops/billing", tags=["operations"])
router = APIRouter(route_class=JSONRoute, prefix="/v1/billing", tags=["billing"])
PlanId = Annotated[str, Path(pattern=schemas.PLAN_ID)]
Version = Annotated[int, Path(ge=1, le=2**31 - 1)]


def plan_out(plan: BillingPlan) -> schemas.PlanOut:
    return schemas.PlanOut(id=plan.id, name=plan.name, currency=plan.currency,
                           quotas={k: decimal_str(v)
                                   for k, v in quota_cache.parse_quotas(plan.quotas).items()},
                           created_at=plan.created_at, updated_at=plan.updated_at)


async def _card_out(session, card: RateCard) -> schemas.RateCardOut:  # noqa: ANN001
    plan = await service.get_plan(session, card.plan_id)
    view = service.card_view(card, plan.currency)
    return schemas.RateCardOut(plan_id=card.plan_id, version=card.version, effective_from=card.effective_from,
                               currency=plan.currency, prices={k: e.as_json() for k, e in view.prices.items()},
                               created_at=card.created_at, used_at=card.used_at)


def account_out(view: service.AccountView) -> schemas.AccountOut:
    return schemas.AccountOut(
        tenant_id=view.tenant_id, plan_id=view.plan_id,
        quotas={k: decimal_str(v) for k, v in view.quotas.items()},
        anomaly_threshold=None if view.anomaly_threshold is None else decimal_str(view.anomaly_threshold),
        anomaly_method=view.anomaly_method)


@ops_router.post("/plans", status_code=201, response_model=schemas.PlanOut,
                 responses={409: {"description": "plan_exists"}})
async def create_plan(body: schemas.PlanCreate, session: DbSession, settings: AppSettings, _: OperatorPrincipal):
    return plan_out(await service.create_plan(session, settings, body))


@ops_router.get("/plans")
async def list_plans(session: DbSession, _: OperatorPrincipal) -> dict[str, list[schemas.PlanOut]]:
    return {"data": [plan_out(p) for p in await service.list_plans(session)]}


@ops_router.get("/plans/{plan_id}", response_model=schemas.PlanOut)
async def get_plan(plan_id: PlanId, session: DbSession, _: OperatorPrincipal):
    return plan_out(await service.get_plan(session, plan_id))


@ops_router.patch("/plans/{plan_id}", response_model=schemas.PlanOut)
async def update_plan(plan_id: PlanId, body: schemas.PlanUpdate, session: DbSession, settings: AppSettings,
                      _: OperatorPrincipal):
    """Name and quotas (``null`` removes every cap); the currency never changes."""
    return plan_out(await service.update_plan(session, settings, plan_id, body))


@ops_router.post("/plans/{plan_id}/rate-cards", status_code=201, response_model=schemas.RateCardOut,
                 responses={409: {"description": "rate_card_not_after_latest, rate_card_in_use"}})
async def add_rate_card(plan_id: PlanId, body: schemas.RateCardCreate, session: DbSession, settings: AppSettings,
                        _: OperatorPrincipal):
    """The plan's next version (1, 2, ...), in force from ``effective_from`` (after the latest version's)."""
    return await _card_out(session, await service.add_rate_card(session, settings, plan_id, body))


@ops_router.get("/plans/{plan_id}/rate-cards")
async def list_rate_cards(plan_id: PlanId, session: DbSession, _: OperatorPrincipal
                          ) -> dict[str, list[schemas.RateCardOut]]:
    return {"data": [await _card_out(session, c) for c in await service.list_rate_cards(session, plan_id)]}


@ops_router.get("/plans/{plan_id}/rate-cards/{version}", response_model=schemas.RateCardOut)
async def get_rate_card(plan_id: PlanId, version: Version, session: DbSession, _: OperatorPrincipal):
    return await _card_out(session, await service.get_rate_card(session, plan_id, version))


@ops_router.delete("/plans/{plan_id}/rate-cards/{version}", status_code=204,
                   responses={409: {"description": "rate_card_immutable (a bill used it), rate_card_not_latest"}})
async def delete_rate_card(plan_id: PlanId, version: Version, session: DbSession, _: OperatorPrincipal):
    """Only the latest version, and only while no bill used it."""
    await service.delete_rate_card(session, plan_id, version)
    return Response(status_code=204)


@ops_router.put("/tenants/{tenant_id}", response_model=schemas.AccountOut)
async def assign(tenant_id: PathId, body: schemas.AccountUpdate, session: DbSession, _: OperatorPrincipal):
    """Put the tenant on a plan, with its anomaly detection overrides (absent: the platform's)."""
    return account_out(await service.assign(session, tenant_id, body))


@ops_router.get("/tenants/{tenant_id}", response_model=schemas.AccountOut)
async def get_account(tenant_id: PathId, session: DbSession, _: OperatorPrincipal):
    return account_out(await service.tenant_account(session, tenant_id))


@router.get("/quotas", response_model=schemas.QuotasOut)
async def get_quotas(session: DbSession, settings: AppSettings, principal: Can(Perm.USAGE_READ)):
    """Each cap of the tenant's plan against this calendar month's (UTC) use."""
    return await quotas.report(session, settings, principal.tenant_id)
