"""Blocks and credentials for the void and verifier tests, made with the foundation's own functions
(``fiscal.invoices.blocks.allocate_block``, ``core.offline``) and real keys: the tenant's for the
credential, a fresh P-256 device key for what the device signs."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from stalela.db.base import utcnow
from stalela.fiscal.core import offline as core
from stalela.fiscal.core.seal import b64url_encode, build_seal, canonical_bytes, public_jwk_from_public_key
from stalela.fiscal.invoices.blocks import allocate_block
from stalela.fiscal.signing import registry as keys
from stalela.kit.clock import rfc3339
from stalela.kit.ids import new_id
from stalela.offline.models import DeviceCredential
from stalela.tenancy.context import bind_tenant


@dataclass
class Device:
    key: ec.EllipticCurvePrivateKey
    jwk: dict[str, str]  # core.device_public_jwk: kid = thumbprint

    @classmethod
    def new(cls) -> "Device":
        key = ec.generate_private_key(ec.SECP256R1())
        return cls(key, core.device_public_jwk(public_jwk_from_public_key(key.public_key(), "x")))

    def sign(self, data: bytes) -> bytes:
        r, s = decode_dss_signature(self.key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def seal(self, payload: dict[str, Any]) -> dict[str, Any]:
        data = canonical_bytes(payload)
        return build_seal(payload, self.sign(data), self.jwk["kid"], canonical_payload=data)


@dataclass
class Issued:
    block_id: str
    jti: str
    token: str
    first: int
    last: int
    anchor: str
    device: Device
    info: dict[str, Any]


async def issue_block(db, settings, tenant_id: str, outlet_id: str, *, size: int = 10,
                      expires_at: datetime | None = None, lifetime: timedelta | None = None,
                      device: Device | None = None) -> Issued:
    """A block and its credential, as the credential issuer makes them (a real JWS by the tenant's key)."""
    device = device or Device.new()
    now = utcnow().replace(microsecond=0)
    expires_at = expires_at or now + timedelta(hours=72)
    nbf = expires_at - (lifetime or timedelta(hours=72))
    jti = new_id("dcr")
    device_id = new_id("dev")
    async with db.transaction() as session:
        await bind_tenant(session, tenant_id)
        block, info = await allocate_block(session, settings, tenant_id, outlet_id=outlet_id, invoice_type="FV",
                                           size=size, device_id=device_id, credential_jti=jti,
                                           device_key=device.jwk["kid"], expires_at=expires_at)
        key = await keys.active_key(session, tenant_id)
        claims = {"iss": settings.effective_public_url, "sub": device_id, "jti": jti,
                  "iat": int(now.timestamp()), "nbf": int(nbf.timestamp()), "exp": int(expires_at.timestamp()),
                  "vct": core.CREDENTIAL_VCT, "tenant_id": tenant_id, "jurisdiction": info["jurisdiction"],
                  "seller_tax_id": info["seller_tax_id"], "cnf": {"jwk": device.jwk}, "outlet": outlet_id,
                  "outlet_code": info["outlet_code"], "pos_number": info["pos_number"], "series": info["series_id"],
                  "series_code": info["series_code"], "series_generation": info["series_generation"],
                  "series_first": info["series_first"],
                  "block": {"id": block.id, "first": block.first, "last": block.last, "anchor": info["anchor"]},
                  "caps": {"max_invoice_total": "100000000.00", "invoice_types": ["FV"], "tax_groups": ["B"]},
                  "status": {"status_list": {"idx": 0, "uri": "https://example.test/status"}}}
        signing_input = core.credential_signing_input({"alg": "ES256", "typ": core.CREDENTIAL_TYP, "kid": key.id},
                                                      claims)
        token = core.compact_jws(signing_input, await keys.sign(settings, key, signing_input))
        index = int.from_bytes(jti.encode()[-6:], "big") % 2**31  # unique enough for a test's status index
        session.add(DeviceCredential(tenant_id=tenant_id, jti=jti, device_id=device_id, outlet_id=outlet_id,
                                     series_id=info["series_id"], block_id=block.id, status_index=index,
                                     not_before=nbf, expires_at=expires_at, token=token, caps="{}"))
        return Issued(block.id, jti, token, block.first, block.last, info["anchor"], device, info)


def return_statement(issued: Issued, tenant_id: str, *, first: int, prev_hash: str, last: int | None = None,
                     device: Device | None = None) -> dict[str, Any]:
    payload = core.return_payload(tenant_id=tenant_id, block_id=issued.block_id, credential=issued.jti, first=first,
                                  last=issued.last if last is None else last, prev_hash=prev_hash,
                                  at=rfc3339(utcnow()))
    return (device or issued.device).seal(payload)


def b64(data: bytes) -> str:
    return b64url_encode(data)
