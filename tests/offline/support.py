"""Devices and credentials through the real API, for the offline tests (and the SDK's)."""
from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from stalela.fiscal.core import offline as core
from stalela.fiscal.core.seal import b64url_encode, public_jwk_from_public_key


def es256(private_key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(private_key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def public_jwk(private_key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    jwk = public_jwk_from_public_key(private_key.public_key(), "x")
    return {k: jwk[k] for k in ("kty", "crv", "x", "y")}


async def register_device(client, headers: dict[str, str], tenant_id: str, outlet_id: str, name: str = "Till 1",
                          key: ec.EllipticCurvePrivateKey | None = None) -> tuple[dict[str, Any], ec.EllipticCurvePrivateKey]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    r = await client.post("/v1/devices/challenges", headers=headers)
    assert r.status_code == 201, r.text
    nonce = r.json()["nonce"]
    jwk = public_jwk(key)
    proof = b64url_encode(es256(key, core.registration_message(nonce, tenant_id, core.jwk_thumbprint(jwk))))
    r = await client.post("/v1/devices", headers=headers,
                          json={"name": name, "outlet_id": outlet_id, "public_key": jwk, "nonce": nonce, "proof": proof})
    assert r.status_code == 201, r.text
    return r.json(), key


async def issue_credential(client, headers: dict[str, str], device_id: str, **body: Any) -> dict[str, Any]:
    r = await client.post(f"/v1/devices/{device_id}/credentials", headers=headers, json=body)
    assert r.status_code == 201, r.text
    return r.json()
