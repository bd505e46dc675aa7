"""Pseudonyms and buyer encryption: no I/O, no key storage.

Pseudonyms are keyed HMAC-SHA256 under a per-tenant key derived (HKDF) from the master key: an
identifier is looked up, and named in audit entries and receipts, without being stored. A plain or
unsalted hash of a tax id or a phone number would be re-identifiable by enumeration (AEPD-EDPS 2019).
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from stalela.fiscal.core.disclosure import disclosure_bytes

_VERSION = b"\x01"
_NONCE = 12
_NOT_ALNUM = re.compile(r"[^0-9A-Za-z]")


@lru_cache(maxsize=4096)
def pseudonym_key(master: bytes, tenant_id: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=f"stalela-pseudonym-v1:{tenant_id}".encode()).derive(master)


def pseudonym(master: bytes, tenant_id: str, kind: str, value: str) -> str:
    """Lowercase hex HMAC of ``kind:normalized value``; the same person gives the same pseudonym."""
    return hmac.new(pseudonym_key(master, tenant_id), f"{kind}:{normalize(kind, value)}".encode(),
                    hashlib.sha256).hexdigest()


def normalize(kind: str, value: str) -> str:
    if kind == "email":
        return value.strip().lower()
    if kind == "tax_id":  # "A1234567B", "30-71234567-1" and "30712345671" are the same id
        return _NOT_ALNUM.sub("", value).upper()
    return value.strip()


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
