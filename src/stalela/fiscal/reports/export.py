"""Audit exports: a self-contained, signed ``.tar.gz`` an auditor verifies without trusting us.

Layout (members in this order, so a verifier can stream it in one pass):
  manifest.json           a seal (same format as invoices) whose payload lists every other file's
                          SHA-256 and size, the tenant, the range and the counts
  keys.json               JWKS: every signing key of the tenant, retired ones included
  credentials.jsonl       (version 2) every delegated credential of an offline device: {"jti", "token"
                          (the compact JWS the device's invoices verify under), "device_id", "block_id",
                          "revoked_at", "revocation_reason"}
  checkpoints.jsonl       every signed checkpoint, oldest first
  consistency.jsonl       a consistency proof between each pair of consecutive checkpoints
  invoices.jsonl          one line per record of the log in leaf order: {"invoice": sealed object} or
                          (version 2) {"event": a cloud-sealed ledger event (fiscal.ledger.events)}, with
                          "leaf_index": n, "inclusion_proof": {...} against the last checkpoint
A date range selects a **leaf range**: from the first to the last leaf appended to the log in the range
(an invoice's merge time, else its sealing time ``issued_at``; an event's ``created_at``), and every leaf in
between, so the lines stay contiguous even when a merged offline invoice carries a device time outside
the range (it is in the export of the range it was merged in).
Files are written to a temporary directory page by page, then packed, so memory stays bounded
whatever the number of invoices.
"""
from __future__ import annotations

import hashlib
import json
import os
import tarfile
import tempfile
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.config import Settings
from stalela.fiscal.core import merkle
from stalela.fiscal.core.seal import build_seal, canonical_bytes
from stalela.fiscal.invoices.models import Invoice
from stalela.fiscal.invoices.buyers import reveal_buyers
from stalela.fiscal.subjects.service import Purpose
from stalela.fiscal.invoices.service import render
from stalela.fiscal.ledger.events import render_event
from stalela.fiscal.ledger.models import Checkpoint, LedgerEvent
from stalela.fiscal.ledger.repository import MerkleRepository
from stalela.fiscal.ledger.service import render_checkpoint
from stalela.fiscal.reports.repository import Leaves, credential_rows, leaf_pages, leaf_range
from stalela.fiscal.signing import registry as keys
from stalela.fiscal.signing.repository import SigningKeyRepository
from stalela.kit.clock import rfc3339
from stalela.db.base import utcnow
from stalela.tenancy.models import Tenant

FORMAT = "stalela-audit-export"
VERSION = 2  # 2: credentials.jsonl, and ledger events among the invoices
PAGE = 500
MEMBERS = ("keys.json", "credentials.jsonl", "checkpoints.jsonl", "consistency.jsonl", "invoices.jsonl")
MEMBERS_V1 = ("keys.json", "checkpoints.jsonl", "consistency.jsonl", "invoices.jsonl")
Progress = Callable[[int], None]


async def ledger_pages(session: AsyncSession, *, leaves: Leaves | None = None,
                       page: int = PAGE) -> AsyncIterator[list[Invoice | LedgerEvent]]:
    """Invoices and ledger events merged in one leaf order, a page at a time: the log as it was appended
    (``leaves``: that range of it). Each stream is read a page ahead, so memory holds two pages whatever
    the ledger's size."""
    streams = [leaf_pages(session, Invoice, leaves=leaves, page=page),
               leaf_pages(session, LedgerEvent, leaves=leaves, page=page)]
    buffers: list[deque] = [deque(), deque()]
    done = [False, False]
    out: list[Invoice | LedgerEvent] = []
    while True:
        for i in (0, 1):
            if not buffers[i] and not done[i]:
                try:
                    buffers[i].extend(await anext(streams[i]))
                except StopAsyncIteration:
                    done[i] = True
        if not buffers[0] and not buffers[1]:
            break
        i = 1 if buffers[1] and (not buffers[0] or buffers[1][0].leaf_index < buffers[0][0].leaf_index) else 0
        out.append(buffers[i].popleft())
        if len(out) >= page:
            yield out
            out = []
    if out:
        yield out


async def tenant_credentials(session: AsyncSession, tenant_id: str) -> list[dict[str, Any]]:
    rows = await credential_rows(session, tenant_id)
    return [{"jti": jti, "token": token, "device_id": device, "block_id": block,
             "revoked_at": _instant(revoked), "revocation_reason": reason}
            for jti, token, device, block, revoked, reason in rows]


def _instant(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite hands text() columns back as stored (repository.credential_rows)
        return value
    return rfc3339(value)


async def tenant_keys(session: AsyncSession) -> list[dict[str, Any]]:
    return [keys.public_view(k) for k in await SigningKeyRepository(session).all_keys()]


async def tenant_checkpoints(session: AsyncSession) -> list[dict[str, Any]]:
    rows = (await session.execute(select(Checkpoint).order_by(Checkpoint.tree_size, Checkpoint.id))).scalars()
    return [render_checkpoint(c) for c in rows]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _jsonl(fh, obj: Any) -> None:  # noqa: ANN001
    fh.write(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode())
    fh.write(b"\n")


async def write_export(
    session: AsyncSession, settings: Settings, tenant_id: str, out_path: Path, *,
    date_from: datetime | None = None, date_to: datetime | None = None, progress: Progress | None = None,
    purpose: Purpose = "tenant",
) -> dict[str, Any]:
    """Write the export to ``out_path``; returns the manifest seal. The session is bound to the tenant.
    ``purpose``: whose eyes the buyers are for (``fiscal.subjects``): ``audit`` shows restricted ones too."""
    tenant = (await session.execute(select(Tenant).where(Tenant.id == tenant_id))).scalar_one()
    merkle_repo = MerkleRepository(session)
    checkpoints = await tenant_checkpoints(session)
    last = checkpoints[-1] if checkpoints else None
    counts = {"invoices": 0, "events": 0, "credentials": 0, "checkpoints": len(checkpoints), "keys": 0,
              "inclusion_proofs": 0, "consistency_proofs": 0}
    with tempfile.TemporaryDirectory(prefix="stalela-export-") as tmp:
        work = Path(tmp)
        jwks = await tenant_keys(session)
        counts["keys"] = len(jwks)
        (work / "keys.json").write_text(json.dumps({"keys": jwks}, indent=1))
        with open(work / "credentials.jsonl", "wb") as fh:
            for credential in await tenant_credentials(session, tenant_id):
                _jsonl(fh, credential)
                counts["credentials"] += 1
        with open(work / "checkpoints.jsonl", "wb") as fh:
            for cp in checkpoints:
                _jsonl(fh, cp)
        with open(work / "consistency.jsonl", "wb") as fh:
            sized = [c for c in checkpoints if c["tree_size"] > 0]
            for a, b in zip(sized, sized[1:]):
                if a["tree_size"] == b["tree_size"]:
                    continue
                nodes = await merkle_repo.nodes(merkle.consistency_nodes(a["tree_size"], b["tree_size"]))
                path = merkle.consistency_proof(a["tree_size"], b["tree_size"], nodes)
                _jsonl(fh, {"first": a["tree_size"], "second": b["tree_size"], "first_checkpoint": a["id"],
                            "second_checkpoint": b["id"], "consistency_path": [h.hex() for h in path]})
                counts["consistency_proofs"] += 1
        leaves: Leaves | None = None
        if date_from is not None or date_to is not None:
            leaves = await leaf_range(session, tenant_id, date_from, date_to) or (0, -1)  # (0, -1): nothing
        with open(work / "invoices.jsonl", "wb") as fh:
            async for rows in ledger_pages(session, leaves=leaves):
                proofs = await _inclusion_proofs(merkle_repo, rows, last["tree_size"] if last else 0)
                invoices = [r for r in rows if isinstance(r, Invoice)]
                # Restricted buyers only in the operator's export for the authority (``purpose="audit"``, the
                # CLI): a file a tenant's user downloads shows them as the API does (GDPR Art. 18).
                buyers = await reveal_buyers(session, settings, tenant_id, invoices, purpose=purpose)
                for row in rows:
                    if isinstance(row, Invoice):
                        record: dict[str, Any] = {"invoice": {**render(row), **buyers.get(row.id, {})}}
                    else:
                        record = {"event": render_event(row)}
                    _jsonl(fh, {**record, "leaf_index": row.leaf_index,
                                "inclusion_proof": proofs.get(row.leaf_index)})
                counts["invoices"] += len(invoices)
                counts["events"] += len(rows) - len(invoices)
                counts["inclusion_proofs"] += len(proofs)
                if progress:
                    progress(len(invoices))
        payload = {
            "format": FORMAT,
            "version": VERSION,
            "tenant_id": tenant_id,
            "tenant": {"name": tenant.name, "tax_id": tenant.tax_id, "jurisdiction": tenant.jurisdiction},
            "generated_at": rfc3339(utcnow()),
            "range": {"from": rfc3339(date_from) if date_from else None, "to": rfc3339(date_to) if date_to else None},
            "complete": date_from is None and date_to is None,
            # The leaf range the date range selected (both ends included); null for a whole ledger.
            "leaves": {"first": leaves[0], "last": leaves[1]} if leaves is not None and leaves[1] >= 0 else None,
            "last_checkpoint": last["id"] if last else None,
            "counts": counts,
            "files": [{"name": n, "sha256": sha256_file(work / n), "bytes": (work / n).stat().st_size}
                      for n in MEMBERS],
        }
        key = await keys.active_key(session, tenant_id)
        canonical = canonical_bytes(payload)
        manifest = build_seal(payload, await keys.sign(settings, key, canonical), key.id, canonical_payload=canonical)
        (work / "manifest.json").write_text(json.dumps(manifest, indent=1))
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        partial = out_path.with_name(out_path.name + ".partial")
        with tarfile.open(partial, "w:gz") as tar:
            for name in ("manifest.json", *MEMBERS):
                tar.add(work / name, arcname=name)
        os.replace(partial, out_path)  # never leave a half-written export under the final name
    return manifest


async def _inclusion_proofs(repo: MerkleRepository, rows: list[Invoice | LedgerEvent],
                            tree_size: int) -> dict[int, dict]:
    covered = [inv.leaf_index for inv in rows if inv.leaf_index < tree_size]
    if not covered:
        return {}
    wanted = [node for i in covered for node in merkle.inclusion_nodes(i, tree_size)]
    nodes = await repo.nodes(wanted)
    return {i: {"leaf_index": i, "tree_size": tree_size,
                "audit_path": [h.hex() for h in merkle.inclusion_proof(i, tree_size, nodes)]} for i in covered}
