"""A tenant's revocation status list: a W3C Bitstring Status List credential (VC Data Model 2.0, secured
as a compact JWS by the tenant's key, ``typ: vc+jwt``) and the same facts as plain JSON.

Each credential carries its bit (``status.status_list.idx``) and this list's URL; a verifier fetches
the list, checks the JWS against the tenant's published key, un-gzips ``encodedList`` and reads the bit.
The list is at least 131,072 bits long (16 KB before compression, as the specification asks) so that
fetching it tells the server nothing about which credential the verifier holds."""
from __future__ import annotations

import base64
import gzip
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.errors import NotFound
from stalela.fiscal.core import offline as core
from stalela.fiscal.signing import registry as keys
from stalela.kit.clock import rfc3339
from stalela.offline.credentials import status_list_url
from stalela.offline.device_repository import CredentialRepository
from stalela.tenancy.repository import TenantRepository

MIN_BITS = 131_072  # Bitstring Status List v1.0 §6.1: the minimum length, for herd privacy
VC_TYP = "vc+jwt"
MEDIA_TYPE = "application/vc+jwt"
CONTEXT = "https://www.w3.org/ns/credentials/v2"


def bitstring(indexes: list[int], highest: int = -1, minimum_bits: int = MIN_BITS) -> bytes:
    """Bit ``i`` set for each ``i``; index 0 is the most significant bit of the first byte (the spec's
    "left-most bit"). Long enough for every index handed out (``highest``), in multiples of
    ``minimum_bits``: the list grows in herd-sized steps."""
    needed = max([highest, *indexes]) + 1
    size = max(1, -(-needed // minimum_bits)) * minimum_bits
    bits = bytearray(size // 8)
    for i in indexes:
        bits[i // 8] |= 0x80 >> (i % 8)
    return bytes(bits)


def encode_list(bits: bytes) -> str:
    """Multibase base64url (``u`` prefix, no padding) of the GZIP of the bitstring. ``mtime=0``: the same
    list always encodes to the same text."""
    return "u" + base64.urlsafe_b64encode(gzip.compress(bits, mtime=0)).rstrip(b"=").decode("ascii")


def decode_list(encoded: str) -> bytes:
    if not encoded.startswith("u"):
        raise ValueError("encodedList is multibase base64url: it starts with 'u'")
    body = encoded[1:]
    return gzip.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def bit(bits: bytes, index: int) -> bool:
    return bool(bits[index // 8] & (0x80 >> (index % 8)))


def credential_claims(url: str, issuer: str, encoded: str, now: datetime, ttl_seconds: int) -> dict[str, Any]:
    """The VC 2.0 claims set (with VC-JOSE-COSE the credential *is* the JWT claims set; no ``vc`` wrapper).
    ``validFrom`` and ``iat`` are when it was signed; ``ttl`` (milliseconds) how long it may be cached."""
    return {
        "@context": [CONTEXT],
        "id": url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": issuer,
        "validFrom": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "iat": int(now.timestamp()),
        "credentialSubject": {
            "id": f"{url}#list",
            "type": "BitstringStatusList",
            "statusPurpose": "revocation",
            "encodedList": encoded,
            "ttl": ttl_seconds * 1000,
        },
    }


async def check_tenant(session: AsyncSession, tenant_id: str) -> None:
    """A public URL names the tenant: one that does not exist (or has no database yet) is 404."""
    tenant = await TenantRepository(session).get(tenant_id)
    if tenant is None or tenant.status == "provisioning":
        raise NotFound("no such tenant", code="tenant_not_found", field="tenant_id")


async def as_json(session: AsyncSession, tenant_id: str) -> dict[str, Any]:
    revoked = await CredentialRepository(session).revoked()
    latest = max((c.revoked_at for c in revoked), default=None)
    return {"object": "status_list", "tenant_id": tenant_id, "updated_at": rfc3339(latest) if latest else None,
            "revoked": [{"jti": c.jti, "status_index": c.status_index, "revoked_at": rfc3339(c.revoked_at),
                         "reason": c.revocation_reason} for c in revoked]}


async def as_vc_jwt(session: AsyncSession, settings: Settings, tenant_id: str) -> str:
    """The status list credential, signed now by the tenant's active key (its ``kid`` in the header)."""
    repo = CredentialRepository(session)
    revoked, highest = await repo.revoked(), await repo.max_status_index()
    bits = bitstring([c.status_index for c in revoked], -1 if highest is None else highest)
    now = utcnow().replace(microsecond=0)
    claims = credential_claims(status_list_url(settings, tenant_id), settings.effective_public_url,
                               encode_list(bits), now, settings.offline_status_list_max_age)
    key = await keys.active_key(session, tenant_id)
    header = {"alg": "ES256", "typ": VC_TYP, "kid": key.id}
    signing_input = core.credential_signing_input(header, claims)
    return core.compact_jws(signing_input, await keys.sign(settings, key, signing_input))
