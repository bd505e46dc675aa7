"""Devices: registration proven by a signed single-use nonce, listing, disabling; credentials issued
(idempotently), listed and revoked. The use cases; endpoints are in ``device_endpoints.py``.

Who sees what: writes are for the tenant's administrators; reads are open to whoever reads outlets,
limited to the outlets the caller may use (a till's key, a cashier): another outlet's device is 404, as
if it did not exist. The credential itself (the JWS) is not a secret, it is public data signed by the
cloud, but only administrators are shown it: a cashier has no use for it and should not carry one
device's credential to another."""
from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.audit.service import record as audit
from stalela.auth.permissions import Perm, permissions
from stalela.auth.principal import Principal
from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.db.session import Database
from stalela.errors import Conflict, NotFound, ValidationFailed
from stalela.fiscal.core import offline as core
from stalela.fiscal.core.seal import b64url_decode, public_key_from_jwk, raw_signature_to_der
from stalela.fiscal.invoices.models import IdempotencyRecord
from stalela.fiscal.invoices.repository import IdempotencyRepository
from stalela.fiscal.ledger.repository import MerkleRepository
from stalela.kit import canonical
from stalela.kit.clock import rfc3339
from stalela.kit.ids import new_id
from stalela.offline import clock, credentials
from stalela.offline.device_repository import CredentialRepository, DeviceRepository, NonceRepository
from stalela.offline.models import Device, DeviceCredential, DeviceNonce
from stalela.tenancy.context import bind_tenant
from stalela.tenancy.repository import OutletRepository

NONCE_TTL = timedelta(seconds=60)
DISABLED_REASON = "device_disabled"


def _check_jurisdiction(principal: Principal) -> None:
    # Argentina's receipts are valid only with ARCA's CAE; its contingency regime (CAEA) is not built.
    if principal.jurisdiction is not None and principal.jurisdiction != "CD":
        raise ValidationFailed("offline sealing is available for DRC tenants only", code="offline_not_supported",
                               field="jurisdiction")


async def challenge(session: AsyncSession, principal: Principal) -> dict[str, Any]:
    _check_jurisdiction(principal)
    nonce = DeviceNonce(tenant_id=principal.tenant_id, nonce=secrets.token_urlsafe(32),
                        expires_at=clock.now() + NONCE_TTL)
    await NonceRepository(session).add(nonce)
    return {"object": "device_challenge", "nonce": nonce.nonce, "expires_at": rfc3339(nonce.expires_at)}


def _proof_valid(jwk: dict[str, Any], message: bytes, proof: str) -> bool:
    try:
        der = raw_signature_to_der(b64url_decode(proof))
        public_key_from_jwk(jwk).verify(der, message, ec.ECDSA(hashes.SHA256()))
    except (ValueError, InvalidSignature):
        return False
    return True


async def spend_nonce(session: AsyncSession, principal: Principal, *, outlet_id: str, public_key: dict[str, Any],
                      nonce: str) -> dict[str, Any]:
    """Registration's first step, in a transaction of its own that the caller commits before the proof is
    checked (``check_proof``): the nonce is spent by the first attempt, right or wrong, and a wrong proof's
    422 cannot roll that back. Checks the key and the outlet first (a refusal there leaves the nonce
    unspent: no proof was looked at). Returns the device's public JWK (``kid``: its thumbprint)."""
    _check_jurisdiction(principal)
    try:
        jwk = core.device_public_jwk(public_key)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationFailed(f"public_key is not a P-256 public JWK: {exc}", code="device_key_invalid",
                               field="public_key") from exc
    outlet = (await OutletRepository(session).get_many({outlet_id})).get(outlet_id)
    if outlet is None or not principal.can_use_outlet(outlet_id):
        raise ValidationFailed("no such outlet", code="outlet_not_found", field="outlet_id")
    if not await NonceRepository(session).consume(nonce, clock.now()):
        raise ValidationFailed("the nonce is unknown, used or older than 60 seconds: ask for a new challenge",
                               code="device_nonce_invalid", field="nonce")
    return jwk


def check_proof(jwk: dict[str, Any], tenant_id: str, nonce: str, proof: str) -> None:
    """The device key's signature of the registration message (outside any transaction: pure CPU)."""
    if not _proof_valid(jwk, core.registration_message(nonce, tenant_id, jwk["kid"]), proof):
        raise ValidationFailed("proof is not the device key's ES256 signature of the registration message",
                               code="device_proof_invalid", field="proof")


async def register_with_proof(db: Database, principal: Principal, *, name: str, outlet_id: str, nonce: str,
                              public_key: dict[str, Any], proof: str) -> Device:
    """``POST /v1/devices``: spend the nonce, check the proof, register the device.

    Two transactions: the nonce is spent and committed before the proof is checked, so a wrong proof's
    422 leaves it spent (one transaction would roll the spending back with the refusal)."""
    async with db.transaction() as session:
        await bind_tenant(session, principal.tenant_id)
        jwk = await spend_nonce(session, principal, outlet_id=outlet_id, nonce=nonce, public_key=public_key)
    check_proof(jwk, principal.tenant_id, nonce, proof)
    async with db.transaction() as session:
        await bind_tenant(session, principal.tenant_id)
        return await register(session, principal, name=name, outlet_id=outlet_id, jwk=jwk)


async def register(session: AsyncSession, principal: Principal, *, name: str, outlet_id: str,
                   jwk: dict[str, Any]) -> Device:
    """Registration's last step, once ``spend_nonce`` committed and ``check_proof`` passed."""
    tenant_id = principal.tenant_id
    repo = DeviceRepository(session)
    if await repo.by_thumbprint(jwk["kid"]) is not None:
        raise Conflict("a device with this key is already registered", code="device_key_taken", field="public_key")
    now = utcnow()
    device = Device(tenant_id=tenant_id, id=new_id("dev"), outlet_id=outlet_id, name=name, public_jwk=json.dumps(jwk),
                    thumbprint=jwk["kid"], status="active", created_at=now, updated_at=now)
    await repo.add(device)
    await audit(session, tenant_id, principal.actor, "device.registered", device.id,
                {"outlet_id": outlet_id, "key": jwk["kid"]})
    return device


async def get_device(session: AsyncSession, principal: Principal, device_id: str) -> Device:
    device = await DeviceRepository(session).get(device_id)
    if device is None or not principal.can_use_outlet(device.outlet_id):
        raise NotFound("no such device", code="device_not_found", field="device_id")
    return device


def _outlets(principal: Principal) -> frozenset[str] | None:
    if principal.outlet_id is not None:
        return frozenset({principal.outlet_id})
    return principal.outlet_ids


async def list_devices(session: AsyncSession, principal: Principal, *, outlet_id: str | None, status: str | None,
                       limit: int, starting_after: str | None) -> tuple[list[Device], bool]:
    return await DeviceRepository(session).list_page(outlet_id=outlet_id, status=status, outlets=_outlets(principal),
                                                     limit=limit, starting_after=starting_after)


async def disable(session: AsyncSession, principal: Principal, device_id: str) -> Device:
    """The device gets no new credential, and every live one is revoked now (idempotent)."""
    device = await DeviceRepository(session).get_for_update(device_id)
    if device is None or not principal.can_use_outlet(device.outlet_id):
        raise NotFound("no such device", code="device_not_found", field="device_id")
    if device.status == "disabled":
        return device
    now = utcnow()
    revoked = await CredentialRepository(session).live_of_device_for_update(device_id, now)
    for credential in revoked:
        credential.revoked_at, credential.revocation_reason = now, DISABLED_REASON
    device.status, device.updated_at = "disabled", now
    await session.flush()
    await audit(session, principal.tenant_id, principal.actor, "device.disabled", device.id,
                {"revoked": [c.jti for c in revoked]})
    return device


def _request_hash(device_id: str, body: dict[str, Any]) -> str:
    return hashlib.sha256(canonical.dumps({"device_id": device_id, "body": body})).hexdigest()


async def issue_credential(session: AsyncSession, settings: Settings, principal: Principal, device_id: str, *,
                           block_size: int, lifetime_hours: float, invoice_type: str | None,
                           caps: dict[str, Any] | None, idempotency_key: str | None = None,
                           request_body: dict[str, Any] | None = None) -> tuple[DeviceCredential, bool]:
    """Issue a credential; with ``idempotency_key``, a retry of the same request answers the credential
    issued the first time (``True``: replayed) instead of consuming another block of numbers.

    The key lives in the tenant's ``idempotency_keys`` table, the one sealing uses: one key names one
    request of the tenant, whatever the route (a key first used to seal an invoice is "reused" here)."""
    device = await get_device(session, principal, device_id)
    _check_jurisdiction(principal)
    fingerprint = _request_hash(device_id, request_body or {})
    # The tenant's log lock first (block allocation takes it anyway): two retries racing with one key are
    # serialised here, the second one reading the first one's record; and it comes before the device's
    # lock below, in the order the rest of issuance takes them.
    await MerkleRepository(session).lock_log(principal.tenant_id)
    if idempotency_key is not None:
        replay = await _replay(session, idempotency_key, fingerprint)
        if replay is not None:
            return replay, True
    # The device row again, locked until the credential commits: a disable committed since ``get_device``
    # read it is seen here, and one that starts now waits, then finds (and revokes) this credential.
    device = await DeviceRepository(session).get_for_update(device_id)
    if device is None or device.status != "active":
        raise Conflict("the device is disabled", code="device_disabled", field="device_id")
    credential = await credentials.issue(session, settings, principal.tenant_id, device, block_size=block_size,
                                         lifetime=timedelta(hours=lifetime_hours), invoice_type=invoice_type,
                                         caps=caps)
    if idempotency_key is not None:
        session.add(IdempotencyRecord(
            tenant_id=principal.tenant_id, key=idempotency_key, request_hash=fingerprint, status_code=201,
            # The answer's id only: a replay renders the credential as it stands (revoked since, perhaps).
            response=json.dumps({"object": "credential", "jti": credential.jti}), created_at=credential.created_at,
            expires_at=credential.created_at + timedelta(days=settings.idempotency_retention_days)))
        await session.flush()
    await audit(session, principal.tenant_id, principal.actor, "credential.issued", credential.jti,
                {"device_id": device_id, "block_id": credential.block_id})
    return credential, False


async def _replay(session: AsyncSession, key: str, fingerprint: str) -> DeviceCredential | None:
    repo = IdempotencyRepository(session)
    found = (await repo.find_many([key])).get(key)
    if found is None:
        return None
    if found.expires_at <= utcnow():
        await repo.delete(found)  # past retention: the key is free again
        return None
    stored = json.loads(found.response)
    if found.request_hash != fingerprint or stored.get("object") != "credential":
        raise ValidationFailed("this Idempotency-Key was used with a different request",
                               code="idempotency_key_reused", field="Idempotency-Key")
    return await CredentialRepository(session).get(stored["jti"])


async def get_credential(session: AsyncSession, principal: Principal, device_id: str, jti: str) -> DeviceCredential:
    await get_device(session, principal, device_id)
    credential = await CredentialRepository(session).get(jti)
    if credential is None or credential.device_id != device_id:
        raise NotFound("no such credential", code="credential_not_found", field="jti")
    return credential


async def list_credentials(session: AsyncSession, principal: Principal, device_id: str, *, limit: int,
                           starting_after: str | None) -> tuple[list[DeviceCredential], bool]:
    await get_device(session, principal, device_id)
    return await CredentialRepository(session).page_of_device(device_id, limit=limit, starting_after=starting_after)


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
        await audit(session, principal.tenant_id, principal.actor, "credential.revoked", jti,
                    {"device_id": device_id, "reason": reason})
    return credential


async def overview(session: AsyncSession, principal: Principal, per_device: int = 20) -> list[dict[str, Any]]:
    """The console's view: each device the caller may see, with its newest credentials."""
    devices = await DeviceRepository(session).all_of(_outlets(principal))
    by_device: dict[str, list[DeviceCredential]] = {}
    for c in await CredentialRepository(session).of_devices([d.id for d in devices]):
        by_device.setdefault(c.device_id, []).append(c)
    now = utcnow()
    return [{"device": d, "key": d.thumbprint,
             "credentials": [{"row": c, "status": credential_status(c, now), "block": claims_of(c)["block"]}
                             for c in by_device.get(d.id, [])[:per_device]],
             "more": len(by_device.get(d.id, [])) > per_device}
            for d in devices]


def sees_tokens(principal: Principal) -> bool:
    return Perm.ADMIN in permissions(principal)


def render_device(device: Device) -> dict[str, Any]:
    return {"id": device.id, "object": "device", "outlet_id": device.outlet_id, "name": device.name,
            "public_key": json.loads(device.public_jwk), "status": device.status,
            "created": rfc3339(device.created_at)}


def credential_status(credential: DeviceCredential, now: datetime | None = None) -> str:
    if credential.revoked_at is not None:
        return "revoked"
    return "expired" if credential.expires_at <= (now or utcnow()) else "active"


def claims_of(credential: DeviceCredential) -> dict[str, Any]:
    """The claims as issued (our own token, read back without a check: the row is the source)."""
    return json.loads(b64url_decode(credential.token.split(".")[1]))


def render_credential(credential: DeviceCredential, *, with_token: bool = True) -> dict[str, Any]:
    block = claims_of(credential)["block"]
    out = {"jti": credential.jti, "object": "credential", "device_id": credential.device_id,
           "outlet_id": credential.outlet_id, "block_id": credential.block_id,
           "block": {"first": block["first"], "last": block["last"]},
           "status": credential_status(credential), "status_index": credential.status_index,
           "not_before": rfc3339(credential.not_before), "expires_at": rfc3339(credential.expires_at),
           "caps": json.loads(credential.caps),
           "revoked_at": rfc3339(credential.revoked_at) if credential.revoked_at else None,
           "revocation_reason": credential.revocation_reason}
    if with_token:
        out["credential"] = credential.token
    return out
