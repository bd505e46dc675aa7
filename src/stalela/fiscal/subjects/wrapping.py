"""Tenant keys: they wrap (AES-256-GCM) the per-subject data keys.

With the software signer the tenant key is 32 random bytes sealed under the master key and stored on
its row; with the HSM it is an AES key generated inside the token (sensitive, never extractable) and
the wrapping is done by the token. Either way the database only ever holds wrapped data keys, so a
stolen backup alone reveals no buyer, and destroying a tenant key (offboarding) erases every one of
its subjects at once.

Wrapped data key format: ``0x01 | nonce (12) | AES-GCM(tenant key, data key, aad) (32 + 16)`` with
``aad = b"stalela-subject-key-v1:" + tenant_id + ":" + subject key id``, so a wrapped key copied onto
another subject's row does not unwrap.
"""
from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from stalela.config import Settings
from stalela.fiscal.signing import registry
from stalela.fiscal.signing.base import SigningError
from stalela.kit.secretbox import SecretUnreadable, open_secret_bytes, seal_secret_bytes

_VERSION = b"\x01"
_NONCE = 12
DATA_KEY_BYTES = 32


class KeyUnavailable(SigningError):
    code = "subject_key_unavailable"
    title = "A data key cannot be unwrapped"


def _aad(tenant_id: str, key_id: str) -> bytes:
    return f"stalela-subject-key-v1:{tenant_id}:{key_id}".encode()


def _context(tenant_id: str, tenant_key_id: str) -> str:
    return f"tenant-key:{tenant_id}:{tenant_key_id}"


def new_tenant_key(settings: Settings, tenant_id: str, tenant_key_id: str) -> tuple[str, bytes | None]:
    """(backend, material to store): the software key sealed under the master key, or None (in the HSM)."""
    if settings.signer_backend == "pkcs11":
        registry.backend_for(settings, "pkcs11").generate_aes(tenant_key_id)  # type: ignore[attr-defined]
        return "pkcs11", None
    return "software", seal_secret_bytes(settings, os.urandom(32), _context(tenant_id, tenant_key_id))


def destroy_tenant_key(settings: Settings, backend: str, tenant_key_id: str) -> None:
    """The HSM object is destroyed; a software key is destroyed by the caller clearing its row."""
    if backend == "pkcs11":
        registry.backend_for(settings, "pkcs11").destroy_aes(tenant_key_id)  # type: ignore[attr-defined]


def wrap(settings: Settings, tenant_id: str, backend: str, tenant_key_id: str, material: bytes | None,
         key_id: str, data_key: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    aad = _aad(tenant_id, key_id)
    if backend == "pkcs11":
        sealed = registry.backend_for(settings, "pkcs11").aes_gcm(  # type: ignore[attr-defined]
            tenant_key_id, nonce, data_key, aad, encrypt=True)
    else:
        sealed = AESGCM(_software_key(settings, tenant_id, tenant_key_id, material)).encrypt(nonce, data_key, aad)
    return _VERSION + nonce + sealed


def unwrap(settings: Settings, tenant_id: str, backend: str, tenant_key_id: str, material: bytes | None,
           key_id: str, wrapped: bytes) -> bytes:
    wrapped = bytes(wrapped)
    if wrapped[:1] != _VERSION or len(wrapped) != 1 + _NONCE + DATA_KEY_BYTES + 16:
        raise KeyUnavailable(f"data key {key_id}: unknown format")
    nonce, sealed, aad = wrapped[1:1 + _NONCE], wrapped[1 + _NONCE:], _aad(tenant_id, key_id)
    try:
        if backend == "pkcs11":
            return registry.backend_for(settings, "pkcs11").aes_gcm(  # type: ignore[attr-defined]
                tenant_key_id, nonce, sealed, aad, encrypt=False)
        return AESGCM(_software_key(settings, tenant_id, tenant_key_id, material)).decrypt(nonce, sealed, aad)
    except InvalidTag:
        raise KeyUnavailable(f"data key {key_id} does not authenticate") from None


def _software_key(settings: Settings, tenant_id: str, tenant_key_id: str, material: bytes | None) -> bytes:
    if material is None:
        raise KeyUnavailable(f"tenant key {tenant_key_id} was destroyed")
    try:
        return open_secret_bytes(settings, material, _context(tenant_id, tenant_key_id))
    except SecretUnreadable:
        raise KeyUnavailable(f"tenant key {tenant_key_id} does not authenticate") from None
