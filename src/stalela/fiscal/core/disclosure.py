"""Buyer commitments (seal format v2): the signed payload commits to the buyer without showing it.

Pure. ``buyer_commitment = hex(sha256(JCS({"salt": salt, "buyer": buyer})))`` where ``salt`` is 16
random bytes as unpadded base64url and ``buyer`` is the sealed document's ``buyer`` object. Whoever
is shown the buyer and its salt (the tenant, an auditor: like an SD-JWT disclosure) can check them
against the signed commitment; whoever is not learns nothing, even about a low-entropy tax id,
because the salt is random per invoice (AEPD-EDPS 2019 on hashing as pseudonymisation).
"""
from __future__ import annotations

import hashlib
import os
import re
from typing import Any

from stalela.kit import canonical
from stalela.fiscal.core.seal import b64url_encode

SALT_BYTES = 16
_SALT = re.compile(r"[A-Za-z0-9_-]{22}")

# DRC buyer types that name a natural person (docs/jurisdictions/drc.md: PC trader, PL liberal
# profession are individuals too); Argentina's CUIT prefixes of legal entities (30, 33, 34), every
# other CUIT, a CUIL or a DNI names a person.
NATURAL_DRC_TYPES = frozenset({"PP", "PC", "PL"})
LEGAL_CUIT_PREFIXES = ("30", "33", "34")


def new_salt() -> str:
    return b64url_encode(os.urandom(SALT_BYTES))


def disclosure_bytes(salt: str, buyer: dict[str, Any]) -> bytes:
    return canonical.dumps({"salt": salt, "buyer": buyer})


def buyer_commitment(salt: str, buyer: dict[str, Any]) -> str:
    return hashlib.sha256(disclosure_bytes(salt, buyer)).hexdigest()


def check_commitment(commitment: Any, salt: Any, buyer: Any) -> bool:
    """Never raises on hostile input: False for anything that does not match."""
    try:
        return (isinstance(commitment, str) and isinstance(salt, str) and _SALT.fullmatch(salt) is not None
                and isinstance(buyer, dict) and buyer_commitment(salt, buyer) == commitment)
    except (ValueError, TypeError):
        return False


def is_natural_person(buyer: dict[str, Any]) -> bool:
    """Whether the buyer's tax id is personal data (GDPR protects natural persons only)."""
    doc_type = buyer.get("doc_type")
    if doc_type is not None:  # Argentina
        number = str(buyer.get("doc_number") or "")
        return not (doc_type == "CUIT" and number.startswith(LEGAL_CUIT_PREFIXES)) and doc_type != "CF"
    return buyer.get("type") in NATURAL_DRC_TYPES or buyer.get("type") is None


def has_personal_data(buyer: dict[str, Any] | None) -> bool:
    """Any field that can identify someone: such a buyer is encrypted under its subject's key."""
    if not buyer:
        return False
    fields = ("name", "tax_id", "email", "phone", "address", "reference")
    if any(buyer.get(f) for f in fields):
        return True
    return bool(buyer.get("doc_number")) and buyer.get("doc_type") != "CF"
