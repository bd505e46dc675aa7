"""Devices: registration proven by a signed single-use nonce, listing, disabling; credentials issued,
listed and revoked. The use cases; endpoints are in ``device_endpoints.py``."""
from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.auth.principal import Principal
from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.errors import Conflict, NotFound, ValidationFailed
from stalela.fiscal.core import offline as core
from stalela.fiscal.core.seal import b64url_decode, public_key_from_jwk, raw_signature_to_der
from stalela.kit.clock import rfc3339
from stalela.kit.ids import new_id
from stalela.offline import credentials
from stalela.offline.device_repository import CredentialRepository, DeviceRepository, NonceRepository
from stalela.offline.models import Device, DeviceCredential, DeviceNonce
from stalela.tenancy.repository import OutletRepository

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

NONCE_TTL = timedelta(seconds=60)


async def challenge(session: AsyncSession, tenant_id: str) -> dict[str, Any]:
    now = utcnow()
    nonce = DeviceNonce(tenant_id=tenant_id, nonce=secrets.token_urlsafe(32), expires_at=now + NONCE_TTL)
    await NonceRepository(session).add(nonce)
    return {"object": "device_challenge", "nonce": nonce.nonce, "expires_at": rfc3339(nonce.expires_at)}


def _proof_valid(jwk: dict[str, Any], message: bytes, proof: str) -> bool:
    try:
        der = raw_signature_to_der(b64url_decode(proof))
        public_key_from_jwk(jwk).verify(der, message, ec.ECDSA(hashes.SHA256()))
    except (ValueError, InvalidSignature):
        return False
    return True


async def register(session: AsyncSession, principal: Principal, *, name: str, outlet_id: str,
                   public_key: dict[str, Any], nonce: str, proof: str) -> Device:
    tenant_id = principal.tenant_id
    try:
        jwk = core.device_public_jwk(public_key)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationFailed(f"public_key is not a P-256 public JWK: {exc}", code="device_key_invalid",
                               field="public_key") from exc
    outlet = (await OutletRepository(session).get_many({outlet_id})).get(outlet_id)
    if outlet is None or not principal.can_use_outlet(outlet_id):
        raise ValidationFailed("no such outlet", code="outlet_not_found", field="outlet_id")
    now = utcnow()
    # The nonce is spent by the first attempt, right or wrong: a proof cannot be retried against it.
    if not await NonceRepository(session).consume(nonce, now):
        raise ValidationFailed("the nonce is unknown, used or older than 60 seconds: ask for a new challenge",
                               code="device_nonce_invalid", field="nonce")
    if not _proof_valid(jwk, core.registration_message(nonce, tenant_id, jwk["kid"]), proof):
        raise ValidationFailed("proof is not the device key's ES256 signature of the registration message",
                               code="device_proof_invalid", field="proof")
    repo = DeviceRepository(session)
    if await repo.by_thumbprint(jwk["kid"]) is not None:
        raise Conflict("a device with this key is already registered", code="device_key_taken", field="public_key")
    device = Device(tenant_id=tenant_id, id=new_id("dev"), outlet_id=outlet_id, name=name, public_jwk=json.dumps(jwk),
                    thumbprint=jwk["kid"], status="active", created_at=now, updated_at=now)
    return await repo.add(device)


async def get_device(session: AsyncSession, principal: Principal, device_id: str) -> Device:
    device = await DeviceRepository(session).get(device_id)
    if device is None or not principal.can_use_outlet(device.outlet_id):
        raise NotFound("no such device", code="device_not_found", field="device_id")
    return device


async def issue_credential(session: AsyncSession, settings: Settings, principal: Principal, device_id: str, *,
                           block_size: int, lifetime_hours: float, invoice_type: str | None,
                           caps: dict[str, Any] | None) -> DeviceCredential:
    device = await get_device(session, principal, device_id)
    if device.status != "active":
        raise Conflict("the device is disabled", code="device_disabled", field="device_id")
    return await credentials.issue(session, settings, principal.tenant_id, device, block_size=block_size,
                                   lifetime=timedelta(hours=lifetime_hours), invoice_type=invoice_type, caps=caps)


async def revoke(session: AsyncSession, principal: Principal, device_id: str, jti: str, reason: str = "requested",
                 at: datetime | None = None) -> DeviceCredential:
    """Revoke a credential (idempotent: the first revocation's time and reason stay)."""
    await get_device(session, principal, device_id)
    credential = await CredentialRepository(session).get_for_update(jti)
    if credential is None or credential.device_id != device_id:
        raise NotFound("no such credential", code="credential_not_found", field="jti")
    if credential.revoked_at is None:
        credential.revoked_at, credential.revocation_reason = at or utcnow(), reason
        await session.flush()
    return credential


def render_device(device: Device) -> dict[str, Any]:
    return {"id": device.id, "object": "device", "outlet_id": device.outlet_id, "name": device.name,
            "public_key": json.loads(device.public_jwk), "status": device.status,
            "created": rfc3339(device.created_at)}


def render_credential(credential: DeviceCredential, *, with_token: bool = True) -> dict[str, Any]:
    out = {"jti": credential.jti, "object": "credential", "device_id": credential.device_id,
           "outlet_id": credential.outlet_id, "block_id": credential.block_id,
           "status_index": credential.status_index, "not_before": rfc3339(credential.not_before),
           "expires_at": rfc3339(credential.expires_at), "caps": json.loads(credential.caps),
           "revoked_at": rfc3339(credential.revoked_at) if credential.revoked_at else None,
           "revocation_reason": credential.revocation_reason}
    if with_token:
        out["credential"] = credential.token
    return out
