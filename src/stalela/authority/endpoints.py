from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import Field, HttpUrl, UrlConstraints

from stalela.auth.permissions import Perm
from stalela.auth.dependencies import AppSettings, DbSession, Can, TenantSession
from stalela.authority import service
from stalela.kit.schemas import PathId, StrictModel
from stalela.kit.jsonbody import JSONRoute

router = APIRouter(route_class=JSONRoute, prefix="/v1", tags=["authority"])


class DeviceIn(StrictModel):
    nim: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    # The column holds 500 characters: a longer URL must be a 422 here, not a database error later.
    base_url: Annotated[HttpUrl, UrlConstraints(max_length=500)]
    token: str = Field(min_length=1, max_length=4096)


# Checked in a short transaction of its own: the URL's DNS lookup comes before the request's transaction.
Admin = Can(Perm.ADMIN, own_transaction=True)


async def _vetted(body: DeviceIn, settings: AppSettings, _: Admin) -> tuple[DeviceIn, str]:
    return body, await service.vet_device_url(settings, str(body.base_url))


@router.put("/outlets/{outlet_id}/authority-device", responses={409: {"description": "jurisdiction_mismatch"}})
async def register_device(outlet_id: PathId, vetted: Annotated[tuple[DeviceIn, str], Depends(_vetted)],
                          principal: Admin, session: TenantSession, settings: AppSettings):
    """Register (or replace) the outlet's DGI e-MCF device; its token is stored encrypted, never shown."""
    body, base_url = vetted
    device = await service.register_device(session, settings, principal, outlet_id, body.nim, base_url, body.token)
    return service.device_view(device)


@router.get("/outlets/{outlet_id}/authority-device")
async def get_device(outlet_id: PathId, session: DbSession, principal: Can(Perm.ADMIN)):
    return service.device_view(await service.get_device(session, principal, outlet_id))


@router.get("/sync/status")
async def sync_status(session: DbSession, principal: Can(Perm.INVOICES_READ)):
    """Per outlet: invoices pending at the authority, the oldest one's age, failures and rejections, last
    success, and how the outlet reaches its authority (a DGI device, or the tenant's ARCA credentials)."""
    rows = await service.sync_status(session, principal.jurisdiction)
    rows = [r for r in rows if principal.can_use_outlet(r["outlet_id"])]
    return {"outlets": rows}
