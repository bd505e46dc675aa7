"""The seal: the externally verifiable contract of every sealed document (DESIGN.md §5).

Pure: no I/O, no key storage. Signing lives in ``stalela.fiscal.signing``; this module only defines
what is signed (RFC 8785 canonical bytes), how the seal object is laid out, and how anyone holding
nothing but the public JWK checks it. Changing anything observable here is a format version bump.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from stalela.kit import canonical

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

ALGORITHM = "ES256"
SIGNATURE_LENGTH = 64
_COORD_LENGTH = 32
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")


def canonical_bytes(payload: dict[str, Any]) -> bytes:
    """RFC 8785 bytes of ``payload``; raises ``ValueError`` for values JCS cannot represent."""
    return canonical.dumps(payload)


def seal_hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(payload)).hexdigest()


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict inverse of :func:`b64url_encode`.

    Padding, the standard alphabet and non-canonical trailing bits are all rejected, so that one
    signature has exactly one textual form (a verifier must not accept variants the signer never
    produced).
    """
    if not isinstance(text, str) or not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not unpadded base64url") from exc
    if b64url_encode(data) != text:
        raise ValueError("non-canonical base64url")
    return data


def public_jwk_from_public_key(public_key: ec.EllipticCurvePublicKey, kid: str) -> dict[str, str]:
    if not isinstance(public_key.curve, ec.SECP256R1):
        raise ValueError(f"ES256 needs a P-256 key, got {public_key.curve.name}")
    numbers = public_key.public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url_encode(numbers.x.to_bytes(_COORD_LENGTH, "big")),
        "y": b64url_encode(numbers.y.to_bytes(_COORD_LENGTH, "big")),
        "kid": kid,
        "alg": ALGORITHM,
        "use": "sig",
    }


def public_key_from_jwk(jwk: dict[str, Any]) -> ec.EllipticCurvePublicKey:
    """Raises ``ValueError`` for anything that is not a P-256 signing key usable with ES256."""
    if not isinstance(jwk, dict):
        raise ValueError("JWK is not an object")
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        raise ValueError("JWK is not an EC P-256 key")
    if jwk.get("alg", ALGORITHM) != ALGORITHM:
        raise ValueError(f"JWK algorithm is {jwk.get('alg')!r}, not {ALGORITHM}")
    if jwk.get("use", "sig") != "sig":
        raise ValueError("JWK is not a signature key")
    x, y = jwk.get("x"), jwk.get("y")
    if not isinstance(x, str) or not isinstance(y, str):
        raise ValueError("JWK lacks x or y")
    return _public_key_from_coordinates(x, y)


# Verifying an audit export checks thousands of seals against a handful of keys; building the key
# (which includes the on-curve check) is several times the cost of the verification itself.
@lru_cache(maxsize=64)
def _public_key_from_coordinates(x: str, y: str) -> ec.EllipticCurvePublicKey:
    xb, yb = b64url_decode(x), b64url_decode(y)
    if len(xb) != _COORD_LENGTH or len(yb) != _COORD_LENGTH:
        raise ValueError("JWK coordinates are not 32 bytes")
    numbers = ec.EllipticCurvePublicNumbers(
        int.from_bytes(xb, "big"), int.from_bytes(yb, "big"), ec.SECP256R1()
    )
    return numbers.public_key()  # raises ValueError when the point is not on the curve


def raw_signature_to_der(signature: bytes) -> bytes:
    if len(signature) != SIGNATURE_LENGTH:
        raise ValueError(f"an ES256 signature is {SIGNATURE_LENGTH} bytes, got {len(signature)}")
    r = int.from_bytes(signature[:_COORD_LENGTH], "big")
    s = int.from_bytes(signature[_COORD_LENGTH:], "big")
    return encode_dss_signature(r, s)


def build_seal(payload: dict[str, Any], signature: bytes, key_id: str, *,
               canonical_payload: bytes | None = None) -> dict[str, Any]:
    """``canonical_payload``: the bytes that were signed, when the caller has them (saves redoing them)."""
    if len(signature) != SIGNATURE_LENGTH:
        raise ValueError(f"an ES256 signature is {SIGNATURE_LENGTH} bytes, got {len(signature)}")
    data = canonical_payload if canonical_payload is not None else canonical_bytes(payload)
    return {
        "payload": payload,
        "hash": hashlib.sha256(data).hexdigest(),
        "signature": b64url_encode(signature),
        "key_id": key_id,
        "algorithm": ALGORITHM,
    }


@dataclass(frozen=True, slots=True)
class SealCheck:
    valid: bool
    reason: str | None = None

    def __bool__(self) -> bool:
        return self.valid


_OK = SealCheck(True)


def verify_seal(seal: Any, jwk: Any) -> SealCheck:
    """Check ``seal`` with nothing but the signer's public JWK. Never raises on hostile input.

    Besides the signature, the hash and the key binding are checked, because verifiers (the public
    page, ``stalela verify``) show ``hash`` and ``key_id`` and chain invoices by ``hash``: a seal
    whose visible fields disagree with what was signed must not pass.
    """
    try:
        return _verify(seal, jwk)
    except Exception as exc:  # noqa: BLE001 - the contract is "never raise"; report instead
        return SealCheck(False, f"unverifiable seal: {type(exc).__name__}")


def _verify(seal: Any, jwk: Any) -> SealCheck:
    if not isinstance(seal, dict):
        return SealCheck(False, "seal is not an object")
    payload = seal.get("payload")
    if not isinstance(payload, dict):
        return SealCheck(False, "payload is not an object")
    for field in ("hash", "signature", "key_id", "algorithm"):
        if not isinstance(seal.get(field), str):
            return SealCheck(False, f"{field} is missing or not a string")
    if seal["algorithm"] != ALGORITHM:
        return SealCheck(False, f"unsupported algorithm {seal['algorithm']!r}")
    if not isinstance(jwk, dict) or jwk.get("kid") != seal["key_id"]:
        return SealCheck(False, "key_id does not match the key")
    if "key_id" in payload and payload["key_id"] != seal["key_id"]:
        return SealCheck(False, "payload key_id does not match the seal key_id")
    try:
        public_key = public_key_from_jwk(jwk)
    except ValueError as exc:
        return SealCheck(False, f"unusable key: {exc}")
    if not _HEX_SHA256.fullmatch(seal["hash"]):
        return SealCheck(False, "hash is not lowercase hex SHA-256")
    try:
        message = canonical_bytes(payload)
    except ValueError as exc:
        return SealCheck(False, f"payload cannot be canonicalized: {exc}")
    if hashlib.sha256(message).hexdigest() != seal["hash"]:
        return SealCheck(False, "hash does not match the payload")
    try:
        der = raw_signature_to_der(b64url_decode(seal["signature"]))
    except ValueError as exc:
        return SealCheck(False, f"malformed signature: {exc}")
    try:
        public_key.verify(der, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return SealCheck(False, "signature does not verify")
    return _OK
