"""Buyer encryption and the identifiers a subject is found by: no I/O, no key storage."""
from __future__ import annotations

import os
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from stalela.fiscal.core.disclosure import disclosure_bytes
from stalela.kit.pseudonyms import keyed as pseudonym, normalize  # noqa: F401  (this package's API)

_VERSION = b"\x01"
_NONCE = 12


def identifiers(buyer: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, value) pairs by which a subject can later be found: tax id (Argentina: the document
    number), e-mail, the merchant's own buyer reference. A buyer with none of them (a name only)
    gets a subject of its own per invoice."""
    found = []
    tax_id = buyer.get("tax_id") or (buyer.get("doc_number") if buyer.get("doc_type") not in (None, "CF") else None)
    if tax_id:
        found.append(("tax_id", str(tax_id)))
    for kind in ("email", "reference"):
        if buyer.get(kind):
            found.append((kind, str(buyer[kind])))
    return found


def new_data_key() -> bytes:
    return os.urandom(32)


def _aad(tenant_id: str, subject_id: str) -> bytes:
    return f"stalela-buyer-v1:{tenant_id}:{subject_id}".encode()


def encrypt_buyer(data_key: bytes, tenant_id: str, subject_id: str, salt: str, buyer: dict[str, Any]) -> bytes:
    """``0x01 | nonce | AES-256-GCM(data key, JCS({"salt","buyer"}))``: exactly the disclosure the
    payload's ``buyer_commitment`` commits to, so a reader re-checks it after decrypting."""
    nonce = os.urandom(_NONCE)
    return _VERSION + nonce + AESGCM(data_key).encrypt(nonce, disclosure_bytes(salt, buyer), _aad(tenant_id, subject_id))


def decrypt_buyer(data_key: bytes, tenant_id: str, subject_id: str, blob: bytes) -> bytes:
    blob = bytes(blob)
    if blob[:1] != _VERSION:
        raise ValueError("unknown buyer ciphertext format")
    return AESGCM(data_key).decrypt(blob[1:1 + _NONCE], blob[1 + _NONCE:], _aad(tenant_id, subject_id))
