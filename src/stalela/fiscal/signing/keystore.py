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

import base64
import binascii
import os
import re
import secrets
import threading
from collections import OrderedDict
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from stalela.fiscal.core.seal import public_jwk_from_public_key
from stalela.fiscal.signing.base import SIGNATURE_LENGTH, GeneratedKey, SigningError

MASTER_KEY_LENGTH = 32
BLOB_VERSION = 1
_NONCE_LENGTH = 12
_TAG_LENGTH = 16
_AAD_PREFIX = b"stalela-keystore-v1:"
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")


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


def parse_master_key(text: str) -> bytes:
    """A master key given in settings: 64 hex digits, or base64 / base64url of 32 bytes."""
    text = text.strip()
    if _HEX_KEY.fullmatch(text):
        return bytes.fromhex(text)
    compact = text.rstrip("=")
    try:
        key = base64.b64decode(
            compact.replace("-", "+").replace("_", "/") + "=" * (-len(compact) % 4), validate=True
        )
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != MASTER_KEY_LENGTH:
        raise ValueError(
            f"the master key must be {MASTER_KEY_LENGTH} bytes given as 64 hex digits or base64"
        )
    return key


def load_or_create_master_key(path: Path) -> bytes:
    """Read the master key file, creating it (mode 0600, 32 random bytes) on first use.

    Creation writes a private temporary file and hard-links it into place: the link fails if the
    name exists, so two processes starting together agree on one key and no reader ever sees a
    half-written file. Losing this file loses every software key, which is why it is never
    overwritten.
    """
    path = Path(path)
    try:
        return _read_master_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.write(fd, secrets.token_bytes(MASTER_KEY_LENGTH))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race; use its key
        else:
            _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return _read_master_key(path)


def _read_master_key(path: Path) -> bytes:
    data = path.read_bytes()
    if len(data) == MASTER_KEY_LENGTH:
        return data
    # Also accept a hand-written file holding the key as hex or base64 text.
    try:
        return parse_master_key(data.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError(
            f"{path} does not hold a {MASTER_KEY_LENGTH}-byte master key "
            f"(found {len(data)} bytes); refusing to replace it"
        ) from None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
