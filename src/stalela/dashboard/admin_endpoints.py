"""The merchant console's settings screens: outlets (and their DGI device), API keys, users, webhooks.

Secrets (a new API key, an invitation link, a webhook signing secret) are rendered in the answer to
the POST that made them and never again: there is no redirect that could show them twice.
"""
from __future__ import annotations

import json

from fastapi import APIRouter, Request
from pydantic import ValidationError

from stalela.auth import users
from stalela.auth.dependencies import DbSession
from stalela.auth.permissions import ROLES, SCOPES, Perm
from stalela.auth.endpoints import InvitationCreate
from stalela.authority import service as authority
from stalela.authority.endpoints import DeviceIn
from stalela.dashboard import service
from stalela.dashboard.repository import DashboardRepository
from stalela.dashboard.web import ID, CurrentViewer, DashboardRoute, Form, need, opt, posted, redirect, render
from stalela.errors import ValidationFailed
from stalela.accounts import schemas as tenancy_schemas
from stalela.accounts import service as tenancy
from stalela.webhooks import schemas as webhook_schemas
from stalela.webhooks import service as webhooks
from stalela.webhooks.schemas import EventType

router = APIRouter(prefix="/app", route_class=DashboardRoute, include_in_schema=False)
EVENT_TYPES = list(EventType.__args__)


def _model(model, data: dict):  # noqa: ANN001, ANN202
    """Validate a form with the API's own schema; the first problem becomes a 422 page."""
    try:
        return model(**data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "form"
        raise ValidationFailed(f"{where}: {first.get('msg', 'invalid')}", code="invalid_form", field=where) from None


def _fields(form: Form, *names: str) -> dict:
    return {n: form.text(n) for n in names if form.text(n) is not None}


# --- outlets -------------------------------------------------------------------------------------


@router.get("/outlets")
async def outlets_page(request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.OUTLETS_READ)
    outlets = await service.visible_outlets(session, viewer.principal)
    devices = await DashboardRepository(session).devices() if viewer.can("admin") else {}
    ar = viewer.jurisdiction == "AR"
    series = await service.outlet_series(session, outlets, viewer.jurisdiction) if ar else {}
    arca = await service.arca_credentials(session) if ar and viewer.can("admin") else None
    return render(request, "outlets.html", outlets=outlets, devices=devices, edit=request.query_params.get("edit"),
                  ar=ar, series=series, arca=arca)


@router.post("/outlets")
async def create_outlet(request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.ADMIN)
    form = await posted(request, viewer)
    # An Argentine outlet is a point of sale: its number comes with the form (the API's bounds apply).
    data = _model(tenancy_schemas.OutletCreate, _fields(form, "code", "name", "timezone", "address", "pos_number"))
    outlet = await tenancy.create_outlet(session, viewer.principal, data)
    return redirect(f"/app/outlets?created={outlet.id}")


@router.post("/outlets/{outlet_id}")
async def update_outlet(outlet_id: str, request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.ADMIN)
    form = await posted(request, viewer)
    data = _model(tenancy_schemas.OutletUpdate, _fields(form, "name", "timezone", "address", "status"))
    await tenancy.update_outlet(session, viewer.principal, opt(outlet_id, ID, "outlet_id"), data)
    return redirect("/app/outlets?updated=1")


@router.post("/outlets/{outlet_id}/device")
async def register_device(outlet_id: str, request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.ADMIN)
    form = await posted(request, viewer)
    # The API's schema: its bounds are the columns' (a longer URL was a database error on PostgreSQL).
    data = _model(DeviceIn, {n: form.get(n, "").strip() for n in ("nim", "base_url", "token")})
    await authority.register_device(session, request.app.state.settings, viewer.principal,
                                    opt(outlet_id, ID, "outlet_id"), data.nim, str(data.base_url).rstrip("/"),
                                    data.token)
    return redirect("/app/outlets?device=1")


# --- API keys ------------------------------------------------------------------------------------


async def _keys_page(request: Request, session, viewer, status: int = 200, **context):  # noqa: ANN001, ANN003, ANN202
    keys, more = await tenancy.list_api_keys(session, limit=100, starting_after=None)
    outlets = await service.visible_outlets(session, viewer.principal)
    # Each key with what it can really do (a till's key loses the tenant-wide scopes) and its outlet's code.
    views = await tenancy.api_key_views(session, keys)
    return render(request, "keys.html", status=status, keys=views, more=more, outlets=outlets,
                  scopes=sorted(SCOPES), **context)


@router.get("/keys")
async def keys_page(request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.ADMIN)
    return await _keys_page(request, session, viewer)


@router.post("/keys")
async def create_key(request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.ADMIN)
    form = await posted(request, viewer)
    data = _model(tenancy_schemas.ApiKeyCreate, {"name": form.text("name"), "outlet_id": form.text("outlet_id"),
                                                 "scopes": form.all("scopes") or None})
    created = await tenancy.create_api_key(session, viewer.principal, data)
    return await _keys_page(request, session, viewer, 201, secret=created.secret, secret_key=created.key)


@router.post("/keys/{key_id}/revoke")
async def revoke_key(key_id: str, request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.ADMIN)
    await posted(request, viewer)
    await tenancy.revoke_api_key(session, opt(key_id, ID, "key_id"), viewer.principal)
    return redirect("/app/keys?revoked=1")


# --- users ---------------------------------------------------------------------------------------


async def _users_page(request: Request, session, viewer, status: int = 200, **context):  # noqa: ANN001, ANN003, ANN202
    rows = await DashboardRepository(session).users()
    outlets = await service.visible_outlets(session, viewer.principal)
    return render(request, "users.html", status=status, users=[users.user_view(u) for u in rows], outlets=outlets,
                  roles=list(ROLES), **context)


@router.get("/users")
async def users_page(request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.ADMIN)
    return await _users_page(request, session, viewer)


@router.post("/users/invite")
async def invite(request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.ADMIN)
    form = await posted(request, viewer)
    data = _model(InvitationCreate, {**_fields(form, "email", "name", "role"), "outlet_ids": form.all("outlet_ids")})
    inv, token = await users.invite(session, request.app.state.settings, viewer.principal, email=data.email,
                                    name=data.name, role=data.role, outlet_ids=data.outlet_ids)
    link = f"{request.app.state.settings.effective_public_url}/app/accept?token={token}"
    return await _users_page(request, session, viewer, 201, invitation={"email": inv.email, "role": inv.role,
                                                                        "link": link, "token": token})


@router.post("/users/{user_id}")
async def update_user(user_id: str, request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.ADMIN)
    form = await posted(request, viewer)
    changes: dict = {}
    if form.text("role"):
        changes["role"] = form.text("role")
    if form.text("status") in ("active", "deactivated"):
        changes["status"] = form.text("status")
    if "outlet_ids" in form or form.text("role") == "cashier":
        changes["outlet_ids"] = form.all("outlet_ids")
    await users.update_user(session, viewer.principal, opt(user_id, ID, "user_id"), changes)
    return redirect("/app/users?updated=1")


# --- webhooks ------------------------------------------------------------------------------------


async def _webhooks_page(request: Request, session, viewer, status: int = 200, **context):  # noqa: ANN001, ANN003, ANN202
    rows, more = await webhooks.list_endpoints(session, limit=100, starting_after=None)
    return render(request, "webhooks.html", status=status, endpoints=rows, event_types=EVENT_TYPES, **context)


@router.get("/webhooks")
async def webhooks_page(request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.WEBHOOKS)
    return await _webhooks_page(request, session, viewer)


@router.post("/webhooks")
async def create_webhook(request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.WEBHOOKS)
    form = await posted(request, viewer)
    data = _model(webhook_schemas.EndpointCreate, {"url": form.text("url"), "description": form.text("description"),
                                                   "event_types": form.all("event_types") or None})
    created = await webhooks.create_endpoint(session, request.app.state.settings, viewer.principal, data)
    return await _webhooks_page(request, session, viewer, 201, secret=created.secret, secret_endpoint=created.endpoint)


@router.get("/webhooks/{endpoint_id}")
async def webhook_page(endpoint_id: str, request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.WEBHOOKS)
    endpoint_id = opt(endpoint_id, ID, "endpoint_id")
    endpoint = await webhooks.get_endpoint(session, endpoint_id)
    shown = request.query_params.get("status") or None
    if shown not in (None, "pending", "delivered", "failed"):
        shown = None
    messages, more = await webhooks.list_messages(session, endpoint_id, shown, None, limit=50,
                                                  starting_after=opt(request.query_params.get("after"), ID, "after"))
    return render(request, "webhook.html", endpoint=endpoint, messages=messages, more=more, shown=shown)


@router.get("/webhooks/{endpoint_id}/messages/{message_id}")
async def webhook_message_page(endpoint_id: str, message_id: str, request: Request, session: DbSession,
                               viewer: CurrentViewer):
    need(viewer, Perm.WEBHOOKS)
    endpoint_id, message_id = opt(endpoint_id, ID, "endpoint_id"), opt(message_id, ID, "message_id")
    endpoint = await webhooks.get_endpoint(session, endpoint_id)
    message = await webhooks.get_message(session, endpoint_id, message_id)
    attempts, more = await webhooks.list_attempts(session, endpoint_id, message_id, limit=100, starting_after=None)
    return render(request, "webhook_message.html", endpoint=endpoint, message=message, attempts=attempts, more=more,
                  payload=json.dumps(json.loads(message.payload), indent=2, ensure_ascii=False))


@router.post("/webhooks/{endpoint_id}/test")
async def test_webhook(endpoint_id: str, request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.WEBHOOKS)
    await posted(request, viewer)
    endpoint_id = opt(endpoint_id, ID, "endpoint_id")
    await webhooks.send_test(session, viewer.principal, endpoint_id)
    return redirect(f"/app/webhooks/{endpoint_id}?tested=1")


@router.post("/webhooks/{endpoint_id}/messages/{message_id}/retry")
async def retry_message(endpoint_id: str, message_id: str, request: Request, session: DbSession,
                        viewer: CurrentViewer):
    need(viewer, Perm.WEBHOOKS)
    await posted(request, viewer)
    endpoint_id = opt(endpoint_id, ID, "endpoint_id")
    await webhooks.retry_message(session, viewer.principal, endpoint_id, opt(message_id, ID, "message_id"))
    return redirect(f"/app/webhooks/{endpoint_id}?retried=1")
