"""Anomaly routes: the tenant reads and handles its own; the operator reads every tenant's."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from stalela.auth.dependencies import Can, DbSession, OperatorPrincipal
from stalela.auth.permissions import Perm
from stalela.billing import anomaly_schemas as schemas
from stalela.billing import anomaly_service as service
from stalela.kit.jsonbody import JSONRoute
from stalela.kit.pagination import Page, PageParams, page_params
from stalela.kit.schemas import PathId

router = APIRouter(route_class=JSONRoute, prefix="/v1/billing/anomalies", tags=["billing"])
ops_router = APIRouter(route_class=JSONRoute, prefix="/v1/ops/billing/anomalies", tags=["operations"])
Paging = Annotated[PageParams, Depends(page_params)]
# Billing's permissions (auth/permissions.py): reading is usage:read (owner, admin, accountant, auditor,
# the usage scope); acting is billing:manage (owner, admin, accountant; no API key).
Reader = Can(Perm.USAGE_READ)
Manager = Can(Perm.BILLING_MANAGE)
_CONFLICT: dict = {409: {"description": "anomaly_status_conflict: not allowed from the anomaly's status"}}


@router.get("", response_model=Page[schemas.AnomalyOut])
async def list_anomalies(session: DbSession, _: Reader, paging: Paging, status: schemas.Status | None = None):
    """Newest first; ``status`` filters (open, acknowledged, dismissed)."""
    rows, more = await service.list_anomalies(session, status, limit=paging.limit,
                                              starting_after=paging.starting_after)
    return {"data": rows, "has_more": more}


@router.get("/{anomaly_id}", response_model=schemas.AnomalyOut)
async def get_anomaly(anomaly_id: PathId, session: DbSession, _: Reader):
    return await service.get_anomaly(session, anomaly_id)


@router.post("/{anomaly_id}/acknowledge", response_model=schemas.AnomalyOut, responses=_CONFLICT)
async def acknowledge(anomaly_id: PathId, session: DbSession, principal: Manager):
    """Seen and understood (from open)."""
    return await service.set_status(session, principal, anomaly_id, "acknowledged")


@router.post("/{anomaly_id}/dismiss", response_model=schemas.AnomalyOut, responses=_CONFLICT)
async def dismiss(anomaly_id: PathId, session: DbSession, principal: Manager):
    """Not a problem, or handled (from open or acknowledged)."""
    return await service.set_status(session, principal, anomaly_id, "dismissed")


@ops_router.get("", response_model=Page[schemas.AnomalyOut])
async def all_anomalies(session: DbSession, _: OperatorPrincipal, paging: Paging,
                        status: schemas.Status | None = None):
    """Every tenant's anomalies, newest first."""
    rows, more = await service.list_anomalies(session, status, limit=paging.limit,
                                              starting_after=paging.starting_after)
    return {"data": rows, "has_more": more}
