"""What the sealing pipeline needs from a place that holds private keys.

Two backends implement it: ``keystore.SoftwareKeyBackend`` (embedded default: keys encrypted at
rest with a master key, stored by the caller) and ``pkcs11.Pkcs11KeyBackend`` (keys generated and
kept inside an HSM). The key registry stores whatever ``generate`` returns and hands
``private_ref`` back to ``sign``; backends keep no registry of their own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from stalela.errors import ServiceUnavailable

# ES256 throughout: P-256 key, SHA-256 digest, signature as raw r||s (JWS encoding, DESIGN.md §5).
SIGNATURE_LENGTH = 64


class SigningError(ServiceUnavailable):
    """The signer could not produce a signature (HSM down, key missing, key material unreadable).

    A 503 rather than a 500: nothing is wrong with the request, and the client may retry with the
    same idempotency key once the signer is back.
    """

    code = "signer_unavailable"
    title = "Signer unavailable"


@dataclass(frozen=True, slots=True)
class GeneratedKey:
    public_jwk: dict[str, Any]
    # Software: the encrypted private key, to be stored by the caller. PKCS#11: None, the key
    # lives in the token under CKA_ID = CKA_LABEL = key_id.
    private_ref: bytes | None


@runtime_checkable
class KeyBackend(Protocol):
    name: str  # "software" | "pkcs11", stored next to each key so it is signed by the right backend

    def generate(self, key_id: str) -> GeneratedKey: ...

    def sign(self, key_id: str, private_ref: bytes | None, data: bytes) -> bytes:
        """Raw 64-byte r||s ECDSA P-256 signature over SHA-256(data); thread-safe."""
        ...

    def close(self) -> None: ...
