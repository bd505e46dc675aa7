"""Operator routes of tenant offboarding."""
from __future__ import annotations

from fastapi import APIRouter

from stalela.auth.dependencies import DbSession, OperatorPrincipal
from stalela.kit.jsonbody import JSONRoute
from stalela.kit.schemas import PathId
from stalela.observability.metrics import PRIVACY_REQUESTS
from stalela.privacy import offboarding_schemas as schemas
from stalela.privacy import offboarding_service as service

router = APIRouter(route_class=JSONRoute, prefix="/v1", tags=["tenants"])


@router.post("/tenants/{tenant_id}/offboard", status_code=202, response_model=schemas.OffboardingAccepted,
             responses={409: {"description": "offboarding_conflict (another mode is running), tenant_status_conflict"}})
async def offboard_tenant(tenant_id: PathId, body: schemas.OffboardingCreate, session: DbSession,
                          principal: OperatorPrincipal):
    """Start (or find) the tenant's offboarding: writes are refused from its first step on."""
    row, created = await service.start(session, tenant_id, body.mode, principal.actor)
    if created:
        PRIVACY_REQUESTS.labels("offboarding", "received").inc()
    return schemas.OffboardingAccepted(id=row.id, tenant_id=row.tenant_id, mode=row.mode, state=row.state)


@router.get("/tenants/{tenant_id}/offboarding", response_model=schemas.OffboardingOut)
async def get_offboarding(tenant_id: PathId, session: DbSession, _: OperatorPrincipal):
    return service.render(await service.get(session, tenant_id))
