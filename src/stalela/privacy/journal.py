"""The erasure journal: a hash-chained JSON-lines file per tenant, kept OUTSIDE the database.

Why: a database restored from a backup taken before an erasure would bring the erased subject back
(its index, its wrapped key). Every completed erasure is appended here before its transaction
commits, and every entry is re-applied at start-up (``replay``), so a restored database is erased
again before it serves. An entry holds no personal value: pseudonyms (keyed HMACs), key and subject
ids, dates. Each line carries ``prev_hash`` and ``hash`` (SHA-256 of the canonical entry without
``hash``), so a truncated or edited journal is detected.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from stalela.config import Settings
from stalela.fiscal.core.seal import canonical_bytes

GENESIS = "0" * 64


class JournalBroken(Exception):
    """The chain does not verify: an edited, reordered or truncated-in-the-middle journal."""


def path_for(settings: Settings, tenant_id: str) -> Path:
    if not tenant_id.replace("_", "").isalnum():  # ids are [a-z0-9_]: never a path component of our choosing
        raise ValueError(f"bad tenant id {tenant_id!r}")
    return settings.effective_erasure_journal_dir / f"{tenant_id}.jsonl"


def entry_hash(entry: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


def read(path: Path) -> list[dict[str, Any]]:
    """The verified entries; raises ``JournalBroken`` naming the first bad line."""
    if not path.exists():
        return []
    out: list[dict[str, Any]] = []
    prev = GENESIS
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError as exc:
            raise JournalBroken(f"{path}: line {number} is not JSON") from exc
        if entry.get("prev_hash") != prev or entry.get("hash") != entry_hash(entry):
            raise JournalBroken(f"{path}: line {number} breaks the hash chain")
        out.append(entry)
        prev = entry["hash"]
    return out


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # several workers may complete requests of one tenant at once
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def append(settings: Settings, tenant_id: str, entry: dict[str, Any]) -> dict[str, Any]:
    """Append ``entry`` (idempotent by ``request_id``: a retried request adds no second line) and
    fsync it: the caller commits its transaction only after this returns."""
    path = path_for(settings, tenant_id)
    with _locked(path):
        entries = read(path)
        for existing in entries:
            if existing.get("request_id") == entry["request_id"]:
                return existing
        line = {**entry, "prev_hash": entries[-1]["hash"] if entries else GENESIS}
        line["hash"] = entry_hash(line)
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return line


def tenants(settings: Settings) -> list[str]:
    directory = settings.effective_erasure_journal_dir
    if not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob("*.jsonl"))
