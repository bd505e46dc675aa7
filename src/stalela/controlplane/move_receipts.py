"""A move's receipt: what was moved, from where to where, and the figures both sides agreed on under the
freeze, signed with the tenant's own key like its ledger checkpoints (so anyone holding the tenant's public
key, GET /v1/keys/{key_id}, can check it: docs/operations.md, "Moving a tenant")."""
from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.config import Settings
from stalela.controlplane import placement as placements
from stalela.controlplane.models import TenantMove
from stalela.fiscal.core import merkle
from stalela.fiscal.core.seal import build_seal, canonical_bytes
from stalela.fiscal.signing import registry as keys
from stalela.kit.clock import rfc3339


def _side(place: str | None, copied: dict[str, Any] | None, switched: dict[str, Any] | None) -> dict[str, Any]:
    """One side of the move: where it is, and its figures at the last online pass (every table's rows and
    digest sum) and at the switch (the digest sums of the rows caught up under the freeze, the Merkle log and
    the chain heads)."""
    out: dict[str, Any] = {"tier": "dedicated" if place else "shared",
                           "server": placements.server_of(place) if place else "control-plane"}
    if place:
        out["database"] = place.rsplit("/", 1)[-1]
    if switched is not None:
        ledger = switched["ledger"]
        tree = merkle.CompactRange.from_bytes(bytes.fromhex(ledger["frontier"])) if ledger["frontier"] else \
            merkle.CompactRange()
        out["merkle"] = {"tree_size": ledger["log_size"], "root_hash": tree.root().hex()}
        out["chains"] = ledger["chains"]
        out["caught_up_digests"] = switched.get("caught_up", {})
    if copied is not None:
        out["tables_at_copy"] = copied["tables"]
    return out


async def sign_receipt(session: AsyncSession, settings: Settings, move: TenantMove,
                       frozen: dict[str, Any] | None) -> str:
    """The receipt as stored and served: ``{"payload": ..., "seal": ...}`` in JSON."""
    payload: dict[str, Any] = {
        "type": "stalela.tenant_move", "version": 2, "tenant_id": move.tenant_id, "move_id": move.id,
        "requested_at": rfc3339(move.created_at),
        "from": _side(move.source, frozen["copied"]["source"] if frozen else None,
                      frozen["at_switch"]["source"] if frozen else None),
        "to": _side(move.target, frozen["copied"]["target"] if frozen else None,
                    frozen["at_switch"]["target"] if frozen else None),
    }
    if frozen:
        # One figure, not two: counted on both sides at the last full pass, then carried forward by each
        # change-log pass's inserts and deletes (both sides alike, each row proven); counted again on both
        # sides only when the freeze needed a full pass.
        full = bool(frozen["freeze"].get("full_pass"))
        payload["rows_at_switch"] = {"tables": frozen["at_switch"]["source"]["rows"],
                                     "basis": "counted at the switch" if full else
                                     "counted at the last full pass, carried forward by the change log"}
        payload.update(switched_at=frozen["switched_at"], freeze_ms=frozen["freeze_ms"], freeze=frozen["freeze"],
                       phases=frozen["phases"], online_catch_up=frozen["online_catch_up"],
                       verified={k: frozen["verify"][k] for k in ("valid", "invoices", "series")})
    else:
        payload["note"] = "completed after a restart that followed the switch: the freeze's figures were not kept"
    key = await keys.active_key(session, move.tenant_id)
    canonical = canonical_bytes(payload)
    seal = build_seal(payload, await keys.sign(settings, key, canonical), key.id, canonical_payload=canonical)
    return json.dumps({"payload": payload, "seal": seal}, sort_keys=True)
