"""The merchant console's marketplace connections: one page lists them, one page per connection shows its
status, last sync, orders invoiced and parked (with the difference found), and errors; a parked order is
retried or dismissed from there. The same use cases as the API (``connectors.service``)."""
from __future__ import annotations

import re

from fastapi import APIRouter, Request

from stalela.auth.dependencies import DbSession
from stalela.auth.permissions import Perm
from stalela.connectors import service as connections
from stalela.connectors.schemas import ConnectionUpdate
from stalela.dashboard.web import ID, CurrentViewer, DashboardRoute, need, opt, posted, redirect, render

router = APIRouter(prefix="/app", route_class=DashboardRoute, include_in_schema=False)
KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PARKED_SHOWN = 50


@router.get("/connections")
async def connections_page(request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.CONNECTORS)
    rows, more = await connections.list_connections(session, viewer.principal, limit=100, starting_after=None)
    views = await connections.render(session, request.app.state.settings, rows)
    return render(request, "connections.html", connections=views, more=more)


@router.get("/connections/{connection_id}")
async def connection_page(connection_id: str, request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.CONNECTORS)
    connection = await connections.get(session, viewer.principal, opt(connection_id, ID, "connection_id"))
    [view] = await connections.render(session, request.app.state.settings, [connection])
    parked, more_parked = await connections.orders(session, viewer.principal, connection.id, "parked",
                                                   limit=PARKED_SHOWN, starting_after=None)
    recent, _ = await connections.orders(session, viewer.principal, connection.id, None, limit=20, starting_after=None)
    return render(request, "connection.html", c=view, parked=parked, more_parked=more_parked, recent=recent)


@router.post("/connections/{connection_id}/status")
async def set_status(connection_id: str, request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.CONNECTORS)
    form = await posted(request, viewer)
    status = "paused" if form.get("status") == "paused" else "active"
    await connections.update(session, request.app.state.settings, viewer.principal,
                             opt(connection_id, ID, "connection_id"),
                             ConnectionUpdate(status=status))
    return redirect(f"/app/connections/{connection_id}?{status}=1")


@router.post("/connections/{connection_id}/sync")
async def sync(connection_id: str, request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.CONNECTORS)
    await posted(request, viewer)
    await connections.poll_soon(session, viewer.principal, opt(connection_id, ID, "connection_id"))
    return redirect(f"/app/connections/{connection_id}?sync=1")


@router.post("/connections/{connection_id}/orders/{order_key}/{action}")
async def order_action(connection_id: str, order_key: str, action: str, request: Request, session: DbSession,
                       viewer: CurrentViewer):
    need(viewer, Perm.CONNECTORS)
    await posted(request, viewer)
    connection_id, key = opt(connection_id, ID, "connection_id"), opt(order_key, KEY, "order_key")
    if action == "retry":
        await connections.retry(session, viewer.principal, connection_id, key)
    elif action == "dismiss":
        await connections.dismiss(session, viewer.principal, connection_id, key)
    else:
        return redirect(f"/app/connections/{connection_id}")
    return redirect(f"/app/connections/{connection_id}?{action}=1")
