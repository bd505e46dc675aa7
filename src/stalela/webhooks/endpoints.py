from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Query, Response

from stalela.auth.dependencies import AppSettings, Can, DbSession, TenantSession
from stalela.auth.permissions import Perm
from stalela.kit.pagination import Page, PageParams, page_params
from stalela.kit.schemas import PathId
from stalela.webhooks import schemas, service
from stalela.kit.jsonbody import JSONRoute

router = APIRouter(route_class=JSONRoute, prefix="/v1/webhook-endpoints", tags=["webhooks"])
Paging = Annotated[PageParams, Depends(page_params)]
Manager = Can(Perm.WEBHOOKS)
# Routes that save a URL: the caller is checked in a short transaction of its own and the URL's DNS
# lookup runs before the request's transaction (``TenantSession``), which then holds no lock meanwhile.
Saver = Can(Perm.WEBHOOKS, own_transaction=True)


async def _vetted_create(body: schemas.EndpointCreate, settings: AppSettings, _: Saver) -> schemas.EndpointCreate:
    return body.model_copy(update={"url": await service.vet_url(settings, body.url)})


async def _vetted_update(body: schemas.EndpointUpdate, settings: AppSettings, _: Saver) -> schemas.EndpointUpdate:
    if body.url is None:  # absent, or null (refused by the service)
        return body
    return body.model_copy(update={"url": await service.vet_url(settings, body.url)})


def _message(message) -> schemas.MessageOut:  # noqa: ANN001
    out = schemas.MessageOut.model_validate(message)
    if message.status != "pending":
        out.next_attempt_at = None
    return out


_DISABLED: dict = {409: {"description": "webhook_endpoint_disabled"}}


@router.post("", status_code=201, response_model=schemas.EndpointCreated)
async def create_endpoint(body: Annotated[schemas.EndpointCreate, Depends(_vetted_create)], principal: Saver,
                          session: TenantSession, settings: AppSettings):
    """The signing secret is in this answer and nowhere else, ever: store it now."""
    created = await service.create_endpoint(session, settings, principal, body)
    return schemas.EndpointCreated(**schemas.EndpointOut.model_validate(created.endpoint).model_dump(),
                                   secret=created.secret)


@router.get("", response_model=Page[schemas.EndpointOut])
async def list_endpoints(session: DbSession, _: Manager, paging: Paging):
    rows, more = await service.list_endpoints(session, limit=paging.limit, starting_after=paging.starting_after)
    return {"data": rows, "has_more": more}


@router.get("/{endpoint_id}", response_model=schemas.EndpointOut)
async def get_endpoint(endpoint_id: PathId, session: DbSession, _: Manager):
    return await service.get_endpoint(session, endpoint_id)


@router.patch("/{endpoint_id}", response_model=schemas.EndpointOut)
async def update_endpoint(endpoint_id: PathId, body: Annotated[schemas.EndpointUpdate, Depends(_vetted_update)],
                          principal: Saver, session: TenantSession, settings: AppSettings):
    return await service.update_endpoint(session, settings, endpoint_id, body, principal)


@router.delete("/{endpoint_id}", status_code=204)
async def delete_endpoint(endpoint_id: PathId, session: DbSession, principal: Manager):
    await service.delete_endpoint(session, endpoint_id, principal)
    return Response(status_code=204)


@router.post("/{endpoint_id}/rotate-secret", response_model=schemas.SecretRotated)
async def rotate_secret(endpoint_id: PathId, session: DbSession, principal: Manager, settings: AppSettings,
                        body: Annotated[schemas.SecretRotate | None, Body()] = None):
    """A new secret; the previous one keeps signing alongside it (two signatures) for the grace period."""
    endpoint, secret = await service.rotate_secret(session, settings, endpoint_id,
                                                   body.grace_seconds if body else None, principal)
    return schemas.SecretRotated(secret=secret, previous_secret_expires_at=endpoint.previous_secret_expires_at)


@router.post("/{endpoint_id}/test", status_code=201, response_model=schemas.MessageOut, responses=_DISABLED)
async def send_test(endpoint_id: PathId, session: DbSession, principal: Manager):
    """Queue a ``webhook.test`` event to this endpoint (whatever its event filter)."""
    return _message(await service.send_test(session, principal, endpoint_id))


@router.get("/{endpoint_id}/messages", response_model=Page[schemas.MessageOut])
async def list_messages(endpoint_id: PathId, session: DbSession, _: Manager, paging: Paging,
                        status: Literal["pending", "delivered", "failed"] | None = None,
                        event_type: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z0-9_.]+$")] = None):
    rows, more = await service.list_messages(session, endpoint_id, status, event_type, limit=paging.limit,
                                             starting_after=paging.starting_after)
    return {"data": [_message(m) for m in rows], "has_more": more}


@router.get("/{endpoint_id}/messages/{msg_id}", response_model=schemas.MessageOut)
async def get_message(endpoint_id: PathId, msg_id: PathId, session: DbSession, _: Manager):
    return _message(await service.get_message(session, endpoint_id, msg_id))


@router.get("/{endpoint_id}/messages/{msg_id}/attempts", response_model=Page[schemas.AttemptOut])
async def list_attempts(endpoint_id: PathId, msg_id: PathId, session: DbSession, _: Manager, paging: Paging):
    """Newest first: status code, latency, error and the start of the receiver's answer."""
    rows, more = await service.list_attempts(session, endpoint_id, msg_id, limit=paging.limit,
                                             starting_after=paging.starting_after)
    return {"data": rows, "has_more": more}


@router.post("/{endpoint_id}/messages/{msg_id}/retry", response_model=schemas.MessageOut, responses=_DISABLED)
async def retry_message(endpoint_id: PathId, msg_id: PathId, session: DbSession, principal: Manager):
    """Send again now, with a fresh retry schedule, whatever the message's state."""
    return _message(await service.retry_message(session, principal, endpoint_id, msg_id))


@router.post("/{endpoint_id}/recover", response_model=schemas.Recovered, responses=_DISABLED)
async def recover(endpoint_id: PathId, body: schemas.RecoverRequest, session: DbSession, principal: Manager):
    """Re-send every failed message created in [since, until) (default until: now), up to 10,000 a call."""
    count, more = await service.recover(session, principal, endpoint_id, body.since, body.until)
    return {"recovered": count, "has_more": more}
