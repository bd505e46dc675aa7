"""The audit log: append-only and hash-chained per tenant, written in the action's own transaction.

entry hash = SHA-256 of the RFC 8785 canonical JSON of {seq, id, at, actor, action, target, details,
ip, prev_hash}; the first entry's prev_hash is 64 zeros. Editing or removing any entry breaks every
later hash, which ``verify_chain`` (and ``stalela verify --audit-log``) reports.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.kit import canonical
from stalela.audit.models import AuditEntry
from stalela.db.base import utcnow
from stalela.kit.clock import rfc3339
from stalela.kit.ids import new_id

GENESIS = "0" * 64


def entry_hash(fields: dict[str, Any]) -> str:
    return hashlib.sha256(canonical.dumps(fields)).hexdigest()


def _fields(e: AuditEntry) -> dict[str, Any]:
    return {"seq": e.seq, "id": e.id, "at": rfc3339(e.at), "actor": e.actor, "action": e.action,
            "target": e.target, "details": json.loads(e.details), "ip": e.ip, "prev_hash": e.prev_hash}


async def record(session: AsyncSession, tenant_id: str, actor: str, action: str, target: str | None = None,
                 details: dict[str, Any] | None = None, ip: str | None = None) -> AuditEntry:
    if session.bind.dialect.name == "postgresql":
        # One writer per tenant chain at a time (the table is append-only: no row to lock FOR UPDATE).
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": f"audit:{tenant_id}"})
    last = (await session.execute(select(AuditEntry.seq, AuditEntry.hash).where(AuditEntry.tenant_id == tenant_id)
                                  .order_by(AuditEntry.seq.desc()).limit(1))).first()
    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    entry = AuditEntry(tenant_id=tenant_id, seq=seq, id=new_id("aud"), at=utcnow(), actor=actor, action=action,
                       target=target, details=json.dumps(details or {}, sort_keys=True), ip=ip, prev_hash=prev,
                       hash="")
    entry.at = entry.at.replace(microsecond=(entry.at.microsecond // 1000) * 1000)  # what rfc3339 keeps
    entry.hash = entry_hash(_fields(entry))
    session.add(entry)
    await session.flush()
    return entry


def render(e: AuditEntry) -> dict[str, Any]:
    return {**_fields(e), "hash": e.hash}


def verify_chain(entries: Iterable[AuditEntry | dict[str, Any]]) -> tuple[int, str | None]:
    """Returns (entries checked, first problem or None). Entries in seq order."""
    expected_seq, prev, n = 1, GENESIS, 0
    for e in entries:
        fields = {k: v for k, v in (e if isinstance(e, dict) else render(e)).items()}
        stored = fields.pop("hash")
        n += 1
        if fields["seq"] != expected_seq:
            return n, f"entry seq {fields['seq']}: expected seq {expected_seq} (an entry was removed or inserted)"
        if fields["prev_hash"] != prev:
            return n, f"entry seq {fields['seq']}: prev_hash does not match the previous entry"
        if entry_hash(fields) != stored:
            return n, f"entry seq {fields['seq']} ({fields['action']}): its content was edited"
        prev, expected_seq = stored, expected_seq + 1
    return n, None
