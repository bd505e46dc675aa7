"""Software key backend: P-256 keys encrypted at rest under one 32-byte master key.

The embedded default (no HSM). Private keys never leave this module in clear: ``generate`` returns
them encrypted, the caller stores the blob, and ``sign`` decrypts it (once; then it is cached).

Blob format, version 1 (the version byte lets a later master-key rotation or KDF change coexist
with stored keys):

    0x01 | nonce (12 random bytes) | AES-256-GCM ciphertext of the PKCS#8 DER private key | tag (16)

The associated data is ``b"stalela-keystore-v1:" + key_id`` (UTF-8), so a blob copied onto another
key's row fails authentication instead of silently signing with the wrong key.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from stalela.fiscal.core.seal import public_jwk_from_public_key
from stalela.fiscal.signing.base import SIGNATURE_LENGTH, GeneratedKey, SigningError
# The master key is the kit's (kit.secretbox encrypts under it too); re-exported for this package's callers.
from stalela.kit.masterkey import MASTER_KEY_LENGTH, load_or_create_master_key, parse_master_key  # noqa: F401

BLOB_VERSION = 1
_NONCE_LENGTH = 12
_TAG_LENGTH = 16
_AAD_PREFIX = b"stalela-keystore-v1:"


class SoftwareKeyBackend:
    name = "software"

    def __init__(self, master_key: bytes, *, cache_size: int = 1024) -> None:
        if len(master_key) != MASTER_KEY_LENGTH:
            raise ValueError(f"the master key must be {MASTER_KEY_LENGTH} bytes")
        self._aead = AESGCM(master_key)
        self._cache_size = cache_size
        # Keyed by the blob as well as the id: a different blob under a known id must be decrypted
        # (and so authenticated) again, never answered from the cache.
        self._cache: OrderedDict[tuple[str, bytes], ec.EllipticCurvePrivateKey] = OrderedDict()
        self._lock = threading.Lock()

    def generate(self, key_id: str) -> GeneratedKey:
        private_key = ec.generate_private_key(ec.SECP256R1())
        der = private_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        nonce = os.urandom(_NONCE_LENGTH)
        blob = bytes([BLOB_VERSION]) + nonce + self._aead.encrypt(nonce, der, _aad(key_id))
        self._remember(key_id, blob, private_key)
        return GeneratedKey(public_jwk_from_public_key(private_key.public_key(), key_id), blob)

    def sign(self, key_id: str, private_ref: bytes | None, data: bytes) -> bytes:
        private_key = self._private_key(key_id, private_ref)
        der = private_key.sign(data, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return r.to_bytes(SIGNATURE_LENGTH // 2, "big") + s.to_bytes(SIGNATURE_LENGTH // 2, "big")

    def close(self) -> None:
        with self._lock:
            self._cache.clear()

    def _private_key(self, key_id: str, blob: bytes | None) -> ec.EllipticCurvePrivateKey:
        if blob is None:
            raise SigningError(f"key {key_id} has no stored key material for the software backend")
        blob = bytes(blob)  # database drivers may hand back memoryview/bytearray
        with self._lock:
            cached = self._cache.get((key_id, blob))
            if cached is not None:
                self._cache.move_to_end((key_id, blob))
                return cached
        private_key = self._decrypt(key_id, blob)
        self._remember(key_id, blob, private_key)
        return private_key

    def _decrypt(self, key_id: str, blob: bytes) -> ec.EllipticCurvePrivateKey:
        if len(blob) < 1 + _NONCE_LENGTH + _TAG_LENGTH or blob[0] != BLOB_VERSION:
            raise SigningError(f"key {key_id}: unknown key blob format")
        nonce, sealed = blob[1 : 1 + _NONCE_LENGTH], blob[1 + _NONCE_LENGTH :]
        try:
            der = self._aead.decrypt(nonce, sealed, _aad(key_id))
        except InvalidTag:
            raise SigningError(
                f"key {key_id}: key material does not authenticate "
                "(wrong master key, or a blob belonging to another key)"
            ) from None
        private_key = serialization.load_der_private_key(der, password=None)
        if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(
            private_key.curve, ec.SECP256R1
        ):
            raise SigningError(f"key {key_id}: stored key is not a P-256 key")
        return private_key

    def _remember(self, key_id: str, blob: bytes, private_key: ec.EllipticCurvePrivateKey) -> None:
        with self._lock:
            self._cache[(key_id, blob)] = private_key
            self._cache.move_to_end((key_id, blob))
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)


def _aad(key_id: str) -> bytes:
    return _AAD_PREFIX + key_id.encode("utf-8")
