"""Routes of devices and their delegated credentials (docs/offline.md, docs/api.md)."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Request, Response

from stalela.auth.dependencies import AppSettings, Can, DbSession
from stalela.auth.permissions import Perm
from stalela.fiscal.invoices.schemas import check_client_key
from stalela.kit.jsonbody import JSONRoute
from stalela.kit.pagination import Page, PageParams, page_params
from stalela.kit.schemas import PathId, QueryId
from stalela.offline import device_schemas as schemas
from stalela.offline import device_service as service

router = APIRouter(route_class=JSONRoute, prefix="/v1/devices", tags=["offline"])
Admin = Can(Perm.ADMIN)
# Reads: whoever reads outlets, within the outlets it may use (a till's key, a cashier); tokens for admins.
Reader = Can(Perm.OUTLETS_READ)
Paging = Annotated[PageParams, Depends(page_params)]


@router.post("/challenges", status_code=201, response_model=schemas.ChallengeOut)
async def create_challenge(session: DbSession, principal: Admin):
    """A single-use nonce, valid 60 seconds, for the device to sign when it registers."""
    return await service.challenge(session, principal)


@router.post("", status_code=201, response_model=schemas.DeviceOut, responses={
    409: {"description": "device_key_taken: a device with this key is already registered"},
    422: {"description": "device_nonce_invalid, device_proof_invalid, device_key_invalid, outlet_not_found, "
                         "offline_not_supported"},
})
async def register_device(body: schemas.DeviceCreate, request: Request,
                          principal: Can(Perm.ADMIN, own_transaction=True)):
    device = await service.register_with_proof(
        request.app.state.db, principal, name=body.name, outlet_id=body.outlet_id, nonce=body.nonce,
        public_key=body.public_key.model_dump(exclude_none=True), proof=body.proof)
    return service.render_device(device)


@router.get("", response_model=Page[schemas.DeviceOut])
async def list_devices(session: DbSession, principal: Reader, paging: Paging,
                       outlet_id: QueryId = None,
                       status: Literal["active", "disabled"] | None = None):
    """Newest first; a caller restricted to some outlets sees only their devices."""
    rows, more = await service.list_devices(session, principal, outlet_id=outlet_id, status=status,
                                            limit=paging.limit, starting_after=paging.starting_after)
    return {"data": [service.render_device(d) for d in rows], "has_more": more}


@router.get("/{device_id}", response_model=schemas.DeviceOut, responses={404: {"description": "device_not_found"}})
async def get_device(device_id: PathId, session: DbSession, principal: Reader):
    return service.render_device(await service.get_device(session, principal, device_id))


@router.post("/{device_id}/disable", response_model=schemas.DeviceOut,
             responses={404: {"description": "device_not_found"}})
async def disable_device(device_id: PathId, session: DbSession, principal: Admin):
    """No new credential for this device; every live one is revoked now (reason ``device_disabled``)."""
    return service.render_device(await service.disable(session, principal, device_id))


@router.post("/{device_id}/credentials", status_code=201, response_model=schemas.CredentialOut, responses={
    404: {"description": "device_not_found"},
    409: {"description": "device_disabled, outlet_inactive"},
    422: {"description": "credential_caps_invalid, credential_lifetime_invalid, block_size_invalid, "
                         "idempotency_key_reused, idempotency_key_reserved, offline_not_supported"},
})
async def issue_credential(device_id: PathId, body: schemas.CredentialCreate, session: DbSession, principal: Admin,
                           settings: AppSettings, response: Response,
                           idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", min_length=1,
                                                                         max_length=255)] = None):
    """Allocate a block of fiscal numbers and sign a delegated credential for it. Numbers are consumed:
    retry with the same ``Idempotency-Key`` to get the same credential back."""
    # The key lives in the table sealing uses, where the service's own keys (a draft's seal) are reserved.
    check_client_key(idempotency_key)
    credential, replayed = await service.issue_credential(
        session, settings, principal, device_id, block_size=body.block_size, lifetime_hours=body.lifetime_hours,
        invoice_type=body.invoice_type, caps=body.caps.model_dump(exclude_none=True, mode="json") if body.caps else None,
        idempotency_key=idempotency_key, request_body=body.model_dump(mode="json", exclude_unset=True))
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return service.render_credential(credential)


@router.get("/{device_id}/credentials", response_model=Page[schemas.CredentialOut],
            responses={404: {"description": "device_not_found"}})
async def list_credentials(device_id: PathId, session: DbSession, principal: Reader, paging: Paging):
    """Newest first. ``credential`` (the JWS) is shown to administrators only."""
    rows, more = await service.list_credentials(session, principal, device_id, limit=paging.limit,
                                                starting_after=paging.starting_after)
    tokens = service.sees_tokens(principal)
    return {"data": [service.render_credential(c, with_token=tokens) for c in rows], "has_more": more}


@router.get("/{device_id}/credentials/{jti}", response_model=schemas.CredentialOut,
            responses={404: {"description": "device_not_found, credential_not_found"}})
async def get_credential(device_id: PathId, jti: PathId, session: DbSession, principal: Reader):
    credential = await service.get_credential(session, principal, device_id, jti)
    return service.render_credential(credential, with_token=service.sees_tokens(principal))


@router.post("/{device_id}/credentials/{jti}/revoke", response_model=schemas.CredentialOut,
             responses={404: {"description": "device_not_found, credential_not_found"}})
async def revoke_credential(device_id: PathId, jti: PathId, session: DbSession, principal: Admin,
                            body: schemas.CredentialRevoke | None = None):
    """Idempotent: a second revocation keeps the first one's time and reason."""
    credential = await service.revoke(session, principal, device_id, jti, (body.reason if body else None) or "requested")
    return service.render_credential(credential, with_token=False)
