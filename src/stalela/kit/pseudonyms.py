"""Pseudonyms: keyed HMAC-SHA256 of an identifier, per tenant, so personal values are found and named
(subject index, audit log, erasure receipts) without being stored.

The key is derived (HKDF) from the master key per tenant. A plain or unsalted hash of an e-mail, a
tax id or a phone number would be re-identifiable by enumeration (AEPD-EDPS 2019 on hashing).
"""
from __future__ import annotations

import hashlib
import hmac
import re
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from stalela.config import Settings
from stalela.kit.masterkey import master_key

_NOT_ALNUM = re.compile(r"[^0-9A-Za-z]")


@lru_cache(maxsize=4096)
def pseudonym_key(master: bytes, tenant_id: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=f"stalela-pseudonym-v1:{tenant_id}".encode()).derive(master)


def normalize(kind: str, value: str) -> str:
    if kind == "email":
        return value.strip().lower()
    if kind == "tax_id":  # "A1234567B", "30-71234567-1" and "30712345671" are the same id
        return _NOT_ALNUM.sub("", value).upper()
    return value.strip()


def keyed(master: bytes, tenant_id: str, kind: str, value: str) -> str:
    """Lowercase hex HMAC of ``kind:normalized value``; the same person gives the same pseudonym."""
    return hmac.new(pseudonym_key(master, tenant_id), f"{kind}:{normalize(kind, value)}".encode(),
                    hashlib.sha256).hexdigest()


# The master key by where it comes from: read once per process (sealing computes pseudonyms for every
# buyer, and the key file never changes: it is never overwritten, see masterkey.py).
_masters: dict[str, bytes] = {}


def pseudonym(settings: Settings, tenant_id: str, kind: str, value: str) -> str:
    source = settings.master_key.get_secret_value() if settings.master_key else str(settings.effective_master_key_file)
    master = _masters.get(source)
    if master is None:
        master = _masters[source] = master_key(settings)
    return keyed(master, tenant_id, kind, value)
