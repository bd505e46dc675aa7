"""The merchant console's devices page: offline sealing devices, their credentials, revoke and disable.

The same use cases as the API (``offline.device_service``): a revocation here is the one the status
list publishes."""
from __future__ import annotations

from fastapi import APIRouter, Request

from stalela.auth.dependencies import DbSession
from stalela.auth.permissions import Perm
from stalela.dashboard import service
from stalela.dashboard.web import ID, CurrentViewer, DashboardRoute, need, opt, posted, redirect, render
from stalela.offline import device_service as devices

router = APIRouter(prefix="/app", route_class=DashboardRoute, include_in_schema=False)


@router.get("/devices")
async def devices_page(request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.ADMIN)
    outlets = {o.id: o for o in await service.visible_outlets(session, viewer.principal)}
    rows = await devices.overview(session, viewer.principal)
    return render(request, "devices.html", rows=rows, outlets=outlets,
                  status_list=f"/v1/status-lists/{viewer.principal.tenant_id}")


@router.post("/devices/{device_id}/disable")
async def disable_device(device_id: str, request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.ADMIN)
    await posted(request, viewer)
    await devices.disable(session, viewer.principal, opt(device_id, ID, "device_id"))
    return redirect("/app/devices?disabled=1")


@router.post("/devices/{device_id}/credentials/{jti}/revoke")
async def revoke_credential(device_id: str, jti: str, request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.ADMIN)
    await posted(request, viewer)
    await devices.revoke(session, viewer.principal, opt(device_id, ID, "device_id"), opt(jti, ID, "jti"))
    return redirect("/app/devices?revoked=1")
