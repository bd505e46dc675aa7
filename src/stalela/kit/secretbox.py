"""Encrypting small secrets at rest (DGI device tokens) with AES-GCM under the master key.

The same master key as the software key store (STALELA_MASTER_KEY or the 0600 file), whatever the
signer backend: these secrets are not signing keys and do not belong in the HSM.
"""
from __future__ import annotations

import os
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from stalela.config import Settings
from stalela.errors import StalelaError
from stalela.kit.masterkey import master_key

_VERSION = b"\x01"


class SecretUnreadable(StalelaError):
    code = "secret_unreadable"
    title = "A stored secret cannot be decrypted (wrong master key?)"


@lru_cache(maxsize=8)
def _aead(master: bytes) -> AESGCM:
    return AESGCM(master)


def seal_secret(settings: Settings, plaintext: str, context: str) -> bytes:
    """``context`` (e.g. "device:<tenant>:<outlet>") is bound as associated data: no swapping rows."""
    return seal_secret_bytes(settings, plaintext.encode(), context)


def open_secret(settings: Settings, blob: bytes, context: str) -> str:
    return open_secret_bytes(settings, blob, context).decode()


def seal_secret_bytes(settings: Settings, plaintext: bytes, context: str) -> bytes:
    nonce = os.urandom(12)
    return _VERSION + nonce + _aead(master_key(settings)).encrypt(nonce, plaintext, context.encode())


def open_secret_bytes(settings: Settings, blob: bytes, context: str) -> bytes:
    blob = bytes(blob)
    if blob[:1] != _VERSION:
        raise SecretUnreadable("unknown secret format")
    try:
        return _aead(master_key(settings)).decrypt(blob[1:13], blob[13:], context.encode())
    except InvalidTag:
        raise SecretUnreadable() from None
