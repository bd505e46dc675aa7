"""Routes of devices and their delegated credentials (docs/offline.md)."""
from __future__ import annotations

from fastapi import APIRouter

from stalela.auth.dependencies import AppSettings, Can, DbSession
from stalela.auth.permissions import Perm
from stalela.kit.jsonbody import JSONRoute
from stalela.kit.schemas import PathId
from stalela.offline import device_schemas as schemas
from stalela.offline import device_service as service

router = APIRouter(route_class=JSONRoute, prefix="/v1/devices", tags=["offline"])
Admin = Can(Perm.ADMIN)


@router.post("/challenges", status_code=201, response_model=schemas.ChallengeOut)
async def create_challenge(session: DbSession, principal: Admin):
    """A single-use nonce, valid 60 seconds, for the device to sign when it registers."""
    return await service.challenge(session, principal.tenant_id)


@router.post("", status_code=201, response_model=schemas.DeviceOut)
async def register_device(body: schemas.DeviceCreate, session: DbSession, principal: Admin):
    device = await service.register(session, principal, name=body.name, outlet_id=body.outlet_id,
                                    public_key=body.public_key.model_dump(exclude_none=True), nonce=body.nonce,
                                    proof=body.proof)
    return service.render_device(device)


@router.get("/{device_id}", response_model=schemas.DeviceOut)
async def get_device(device_id: PathId, session: DbSession, principal: Admin):
    return service.render_device(await service.get_device(session, principal, device_id))


@router.post("/{device_id}/credentials", status_code=201, response_model=schemas.CredentialOut)
async def issue_credential(device_id: PathId, body: schemas.CredentialCreate, session: DbSession, principal: Admin,
                           settings: AppSettings):
    """Allocate a block of fiscal numbers and sign a delegated credential for it."""
    credential = await service.issue_credential(
        session, settings, principal, device_id, block_size=body.block_size, lifetime_hours=body.lifetime_hours,
        invoice_type=body.invoice_type, caps=body.caps.model_dump(exclude_none=True, mode="json") if body.caps else None)
    return service.render_credential(credential)


@router.post("/{device_id}/credentials/{jti}/revoke", response_model=schemas.CredentialOut)
async def revoke_credential(device_id: PathId, jti: PathId, session: DbSession, principal: Admin,
                            body: schemas.CredentialRevoke | None = None):
    credential = await service.revoke(session, principal, device_id, jti, (body.reason if body else None) or "requested")
    return service.render_credential(credential, with_token=False)
