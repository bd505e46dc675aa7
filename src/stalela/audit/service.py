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
    return await append(session, AuditEntry, f"audit:{tenant_id}", AuditEntry.tenant_id == tenant_id,
                        {"tenant_id": tenant_id}, actor, action, target, details, ip)


async def append(session: AsyncSession, model: type, lock: str, chain: Any, keys: dict[str, Any], actor: str,
                 action: str, target: str | None, details: dict[str, Any] | None, ip: str | None) -> Any:
    """Append one entry to the chain of ``model`` selected by ``chain`` (a WHERE clause; ``keys`` are its
    columns on the new row): the tenants' chains and the platform's one (``audit.platform``)."""
    # The chain's own database: a tenant's log may be in its dedicated database, the platform's never is.
    bind = session.sync_session.get_bind(clause=select(model.seq))
    if bind.dialect.name == "postgresql":
        # One writer per chain at a time (the table is append-only: no row to lock FOR UPDATE).
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": lock},
                              bind_arguments={"bind": bind})
    last = (await session.execute(select(model.seq, model.hash).where(chain)
                                  .order_by(model.seq.desc()).limit(1))).first()
    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    entry = model(**keys, seq=seq, id=new_id("aud"), at=utcnow(), actor=actor, action=action, target=target,
                  details=json.dumps(details or {}, sort_keys=True), ip=ip, prev_hash=prev, hash="")
    entry.at = entry.at.replace(microsecond=(entry.at.microsecond // 1000) * 1000)  # what rfc3339 keeps
    entry.hash = entry_hash(_fields(entry))
    session.add(entry)
    await session.flush()
    return entry


def render(e: AuditEntry) -> dict[str, Any]:
    return {**_fields(e), "hash": e.hash}


class ChainCheck:
    """Checks entries one at a time, in seq order, so a long chain is verified page by page."""

    def __init__(self) -> None:
        self.expected_seq, self.prev, self.checked = 1, GENESIS, 0

    def feed(self, e: AuditEntry | dict[str, Any]) -> str | None:
        """The problem with this entry, or None."""
        fields = dict(e if isinstance(e, dict) else render(e))
        stored = fields.pop("hash")
        self.checked += 1
        if fields["seq"] != self.expected_seq:
            return f"entry seq {fields['seq']}: expected seq {self.expected_seq} (an entry was removed or inserted)"
        if fields["prev_hash"] != self.prev:
            return f"entry seq {fields['seq']}: prev_hash does not match the previous entry"
        if entry_hash(fields) != stored:
            return f"entry seq {fields['seq']} ({fields['action']}): its content was edited"
        self.prev, self.expected_seq = stored, self.expected_seq + 1
        return None


def verify_chain(entries: Iterable[AuditEntry | dict[str, Any]]) -> tuple[int, str | None]:
    """Returns (entries checked, first problem or None). Entries in seq order."""
    check = ChainCheck()
    for e in entries:
        problem = check.feed(e)
        if problem:
            return check.checked, problem
    return check.checked, None
