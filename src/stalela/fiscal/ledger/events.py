"""Cloud-sealed ledger events: records in the tenant's Merkle log that are not invoices (number blocks,
offline refusals, voids and un-voids; ``core.offline``). Sealed exactly like an invoice (RFC 8785 payload,
SHA-256, ES256 by the tenant's active key) and appended in the caller's transaction, under the log lock
the caller holds (``LogAppender``), so they interleave with invoices in one order."""
from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.fiscal.core.seal import build_seal, canonical_bytes
from stalela.fiscal.ledger.models import LedgerEvent
from stalela.fiscal.ledger.service import LogAppender
from stalela.fiscal.signing import registry as keys
from stalela.kit.ids import new_id


async def seal_events(session: AsyncSession, settings: Settings, log: LogAppender, key: Any,
                      payloads: list[dict[str, Any]]) -> list[LedgerEvent]:
    """Sign ``payloads`` (built by ``core.offline.record_payload`` with ``key_id=key.id``), append each
    to the log in order and add its row. The caller writes the log (``log.write()``) and flushes."""
    if not payloads:
        return []
    signed = [canonical_bytes(p) for p in payloads]
    signatures = await keys.sign_many(settings, key, signed)
    now = utcnow()
    rows = []
    for payload, data, signature in zip(payloads, signed, signatures):
        seal = build_seal(payload, signature, key.id, canonical_payload=data)
        row = LedgerEvent(
            tenant_id=log.log.tenant_id, id=new_id("lev"), leaf_index=log.append(seal["hash"]), kind=payload["kind"],
            outlet_id=payload["outlet_id"], series_id=payload["series_id"], block_id=payload["block_id"],
            key_id=key.id, seal_hash=seal["hash"], signature=seal["signature"], payload=data.decode(), created_at=now)
        session.add(row)
        rows.append(row)
    return rows


def render_event(event: LedgerEvent) -> dict[str, Any]:
    """An event as the API, the export and the verifier show it: its seal, like an invoice's."""
    return {"id": event.id, "object": "ledger_event", "kind": event.kind, "leaf_index": event.leaf_index,
            "outlet_id": event.outlet_id, "block_id": event.block_id,
            "seal": {"payload": json.loads(event.payload), "hash": event.seal_hash, "signature": event.signature,
                     "key_id": event.key_id, "algorithm": "ES256"}}
