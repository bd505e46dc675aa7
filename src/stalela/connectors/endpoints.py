from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from stalela.auth.dependencies import AppSettings, Can, DbSession, TenantSession, client_ip
from stalela.auth.permissions import Perm
from stalela.connectors import credentials, intake, schemas, service
from stalela.connectors.service import Prepared
from stalela.connectors.clients.base import PlatformError
from stalela.errors import PayloadTooLarge, ServiceUnavailable, ValidationFailed
from stalela.kit import netguard
from stalela.kit.jsonbody import JSONRoute
from stalela.kit.pagination import Page, PageParams, page_params
from stalela.kit.schemas import PathId

router = APIRouter(route_class=JSONRoute, prefix="/v1/connections", tags=["connectors"])
# The platforms' webhooks: no API key (the platform has none of ours), a signature over the raw body instead.
inbound = APIRouter(prefix="/v1/connectors", tags=["connectors"])
Paging = Annotated[PageParams, Depends(page_params)]
Manager = Can(Perm.CONNECTORS)
# Creating one calls the network (the URL's DNS, an OAuth code exchange): the caller is checked in a short
# transaction of its own and that work runs before the request's transaction (``TenantSession``) starts.
Creator = Can(Perm.CONNECTORS, own_transaction=True)
OrderKey = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
OrderStatus = Literal["invoiced", "parked", "pending", "skipped", "credited", "dismissed"]


async def _prepared(body: schemas.ConnectionCreate, settings: AppSettings, _: Creator) -> Prepared:
    custom = body.api_base_url is not None
    base = body.api_base_url or service.default_base(body.platform, body.shop)
    base = str(await netguard.vet_url(base, allow_private=settings.webhooks_allow_private, field="api_base_url"
                                      if custom else "shop", code_prefix="connection_url", allow_query=False,
                                      max_length=500)).rstrip("/")
    try:
        secrets, ttl = await credentials.exchange_code(body.platform, base, body.credentials,
                                                       settings.webhooks_allow_private, custom)
    except PlatformError as exc:
        if exc.transient:  # the platform is down or slow: nothing was created, try again later
            raise ServiceUnavailable(f"the platform did not answer the code exchange: {exc}",
                                     code="platform_unavailable") from None
        raise ValidationFailed(f"the platform refused the authorisation code: {exc}", code="oauth_code_refused",
                               field="credentials.code") from None
    except (KeyError, ValueError):  # an answer without the token it promised
        raise ServiceUnavailable("the platform's answer to the code exchange has no token",
                                 code="platform_unavailable") from None
    return Prepared(body, base, secrets, ttl)


@router.post("", status_code=201, response_model=schemas.ConnectionOut)
async def create_connection(prepared: Annotated[Prepared, Depends(_prepared)], principal: Creator,
                            session: TenantSession, settings: AppSettings, request: Request):
    """Register ``webhook_url`` with the platform afterwards; the credentials are never shown again."""
    connection = await service.create(session, settings, principal, prepared, client_ip(request))
    return (await service.render(session, settings, [connection]))[0]


@router.get("", response_model=Page[schemas.ConnectionOut])
async def list_connections(session: DbSession, principal: Manager, settings: AppSettings, paging: Paging):
    rows, more = await service.list_connections(session, principal, limit=paging.limit,
                                                starting_after=paging.starting_after)
    return {"data": await service.render(session, settings, rows), "has_more": more}


@router.get("/{connection_id}", response_model=schemas.ConnectionOut)
async def get_connection(connection_id: PathId, session: DbSession, principal: Manager, settings: AppSettings):
    return (await service.render(session, settings, [await service.get(session, principal, connection_id)]))[0]


@router.patch("/{connection_id}", response_model=schemas.ConnectionOut)
async def update_connection(connection_id: PathId, body: schemas.ConnectionUpdate, session: DbSession,
                            principal: Manager, settings: AppSettings, request: Request):
    """Pause (webhooks acknowledged and dropped, no poll) or resume (a poll catches up at once)."""
    connection = await service.update(session, settings, principal, connection_id, body, client_ip(request))
    return (await service.render(session, settings, [connection]))[0]


@router.delete("/{connection_id}", status_code=204)
async def delete_connection(connection_id: PathId, session: DbSession, principal: Manager, settings: AppSettings,
                            request: Request):
    await service.delete(session, settings, principal, connection_id, client_ip(request))
    return Response(status_code=204)


@router.post("/{connection_id}/sync", status_code=202, response_model=schemas.ConnectionOut)
async def sync_now(connection_id: PathId, session: DbSession, principal: Manager, settings: AppSettings):
    """Poll this connection now (the background's next round, within seconds) instead of at its interval."""
    connection = await service.poll_soon(session, principal, connection_id)
    return (await service.render(session, settings, [connection]))[0]


@router.get("/{connection_id}/orders", response_model=Page[schemas.OrderOut])
async def list_orders(connection_id: PathId, session: DbSession, principal: Manager, paging: Paging,
                      status: Annotated[OrderStatus | None, Query()] = None):
    """Newest change first; ``status=parked`` lists what waits for a person, with the difference found."""
    rows, more = await service.orders(session, principal, connection_id, status, limit=paging.limit,
                                      starting_after=paging.starting_after)
    return {"data": rows, "has_more": more}


@router.get("/{connection_id}/orders/{order_key}", response_model=schemas.OrderOut)
async def get_order(connection_id: PathId, order_key: OrderKey, session: DbSession, principal: Manager):
    return await service.order(session, principal, connection_id, order_key)


@router.post("/{connection_id}/orders/{order_key}/retry", status_code=202, response_model=schemas.OrderOut)
async def retry_order(connection_id: PathId, order_key: OrderKey, session: DbSession, principal: Manager,
                      request: Request):
    """Read the order again and decide it again (after fixing the connection's options or the order)."""
    return await service.retry(session, principal, connection_id, order_key, client_ip(request))


@router.post("/{connection_id}/orders/{order_key}/dismiss", response_model=schemas.OrderOut)
async def dismiss_order(connection_id: PathId, order_key: OrderKey, session: DbSession, principal: Manager,
                        request: Request):
    """A person takes a parked order over: it is never sealed automatically afterwards."""
    return await service.dismiss(session, principal, connection_id, order_key, client_ip(request))


@inbound.post("/{platform}/{connection_id}/webhooks", response_model=schemas.Received,
              responses={401: {"description": "webhook_signature_invalid"}, 404: {"description": "connection_not_found"},
                         413: {"description": "webhook_too_large"}})
async def receive_webhook(platform: schemas.Platform, connection_id: PathId, request: Request,
                          settings: AppSettings):
    """A platform's delivery: signature checked on the raw bytes, stored, answered at once; the order is
    processed from the outbox. Pings and other topics get a 200 that does nothing."""
    limit = settings.connectors_webhook_max_bytes
    if int(request.headers.get("content-length") or 0) > limit:
        raise PayloadTooLarge(f"a webhook body is at most {limit} bytes", code="webhook_too_large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"a webhook body is at most {limit} bytes", code="webhook_too_large")
    headers = {k.lower(): v for k, v in request.headers.items()}
    return await intake.receive(request.app.state.db, settings, platform, connection_id, headers, bytes(body))
