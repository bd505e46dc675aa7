"""Signed erasure receipts, and their offline check (``stalela verify-erasure``).

A receipt has the seal's shape (docs/seal-format.md): ``{"payload", "hash", "signature", "key_id",
"algorithm": "ES256"}``, its payload being the receipt itself. Anyone with the tenant's public key
(``GET /v1/keys/{key_id}``) checks it; ``merkle_root_before == merkle_root_after`` shows the erasure
left the fiscal ledger as it was.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.config import Settings
from stalela.fiscal.core.seal import build_seal, canonical_bytes, verify_seal
from stalela.fiscal.signing import registry as keys

FIELDS = ("request_id", "tenant_id", "subject", "erased", "restricted", "destroyed_key_ids", "merkle_root_before",
          "merkle_root_after", "completed_at")


async def sign_receipt(session: AsyncSession, settings: Settings, tenant_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    key = await keys.active_key(session, tenant_id)
    canonical = canonical_bytes(payload)
    return build_seal(payload, await keys.sign(settings, key, canonical), key.id, canonical_payload=canonical)


def check_receipt(receipt: Any, jwk: Any) -> list[str]:
    """The problems found (empty: valid). Never raises on hostile input."""
    if not isinstance(receipt, dict) or not isinstance(receipt.get("payload"), dict):
        return ["not a receipt: no payload object"]
    problems = []
    seal = verify_seal(receipt, jwk)
    if not seal:
        problems.append(f"signature: {seal.reason}")
    payload = receipt["payload"]
    missing = [f for f in FIELDS if f not in payload]
    if missing:
        problems.append(f"missing fields: {', '.join(missing)}")
    before, after = payload.get("merkle_root_before"), payload.get("merkle_root_after")
    if not isinstance(before, str) or before != after:
        problems.append("the ledger's Merkle root changed during the erasure")
    return problems
