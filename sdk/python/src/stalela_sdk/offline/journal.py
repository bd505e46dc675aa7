"""The offline sealer's journal: one SQLite file (WAL, ``synchronous=FULL``) holding everything a device
must not lose: its credentials, where each block stands (next number, chain head), every invoice it
sealed (request, seal, buyer salt, upload status, receipt) and its block returns.

A seal is one write transaction (``BEGIN IMMEDIATE``: the lock is taken before the block is read, so
two sealers on one journal cannot draw the same number) that reads the block, inserts the invoice and
moves the block on; the sealer returns the invoice only after COMMIT is durable. A process killed
before that has returned nothing, and the number it was using is still the block's next; killed after,
the invoice is on disk and the number is spent. Either way no number is lost or used twice.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS credentials (
    jti TEXT PRIMARY KEY, token TEXT NOT NULL, claims TEXT NOT NULL, received_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    id TEXT PRIMARY KEY, jti TEXT NOT NULL REFERENCES credentials (jti), first INTEGER NOT NULL,
    last INTEGER NOT NULL, next INTEGER NOT NULL, head TEXT NOT NULL,
    return_statement TEXT, return_answer TEXT);
CREATE TABLE IF NOT EXISTS invoices (
    block_id TEXT NOT NULL REFERENCES blocks (id), counter INTEGER NOT NULL, invoice_id TEXT NOT NULL UNIQUE,
    fiscal_number TEXT NOT NULL, reference TEXT, request TEXT NOT NULL, seal_hash TEXT NOT NULL,
    document TEXT NOT NULL, buyer_salt TEXT, sealed_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'sealed', receipt TEXT, uploaded_at TEXT,
    PRIMARY KEY (block_id, counter));
CREATE INDEX IF NOT EXISTS invoices_pending ON invoices (status, block_id, counter);
CREATE INDEX IF NOT EXISTS invoices_reference ON invoices (reference) WHERE reference IS NOT NULL;
"""

# Upload status of a journalled invoice: ``sealed`` (not uploaded yet, or uploaded without an answer),
# then the cloud's outcome (docs/offline.md, "Returning invoices").
PENDING = ("sealed", "held")


@dataclass
class BlockRow:
    id: str
    jti: str
    first: int
    last: int
    next: int
    head: str
    return_statement: dict[str, Any] | None
    return_answer: dict[str, Any] | None

    @property
    def remaining(self) -> int:
        return max(0, self.last - self.next + 1)


class Journal:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # Autocommit mode (isolation_level=None): transactions are the explicit BEGIN IMMEDIATE below.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk (the WAL fsynced) before COMMIT returns, so a returned seal survives
        # a power cut, not only a killed process.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._lock = threading.Lock()
        with self.write() as db:
            for statement in _statements(SCHEMA):
                db.execute(statement)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One durable write transaction; taken before anything it depends on is read."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def read(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # --- meta and credentials -------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        rows = self.read("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, values: dict[str, str]) -> None:
        with self.write() as db:
            db.executemany("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                           list(values.items()))

    def add_credential(self, token: str, claims: dict[str, Any], received_at: str) -> None:
        """Store a credential and open its block (a credential seen before is left as it stands)."""
        block = claims["block"]
        with self.write() as db:
            db.execute("INSERT INTO credentials (jti, token, claims, received_at) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (jti) DO NOTHING", (claims["jti"], token, json.dumps(claims), received_at))
            db.execute("INSERT INTO blocks (id, jti, first, last, next, head) VALUES (?, ?, ?, ?, ?, ?) "
                       "ON CONFLICT (id) DO NOTHING",
                       (block["id"], claims["jti"], block["first"], block["last"], block["first"], block["anchor"]))
            db.execute("INSERT INTO meta (key, value) VALUES ('current', ?) "
                       "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (claims["jti"],))

    def credential(self, jti: str) -> tuple[str, dict[str, Any]] | None:
        rows = self.read("SELECT token, claims FROM credentials WHERE jti = ?", (jti,))
        return (rows[0][0], json.loads(rows[0][1])) if rows else None

    def block(self, block_id: str, db: sqlite3.Connection | None = None) -> BlockRow | None:
        sql = ("SELECT id, jti, first, last, next, head, return_statement, return_answer FROM blocks WHERE id = ?")
        rows = db.execute(sql, (block_id,)).fetchall() if db is not None else self.read(sql, (block_id,))
        if not rows:
            return None
        r = rows[0]
        return BlockRow(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]) if r[6] else None,
                        json.loads(r[7]) if r[7] else None)

    def blocks(self) -> list[BlockRow]:
        ids = [r[0] for r in self.read("SELECT id FROM blocks ORDER BY first, id")]
        return [b for b in (self.block(i) for i in ids) if b is not None]

    # --- invoices -------------------------------------------------------------------------------------

    def reference_taken(self, reference: str) -> bool:
        return bool(self.read("SELECT 1 FROM invoices WHERE reference = ? LIMIT 1", (reference,)))

    def pending(self, block_id: str, limit: int) -> list[dict[str, Any]]:
        rows = self.read("SELECT counter, request, document, buyer_salt, seal_hash FROM invoices "
                         "WHERE block_id = ? AND status IN ('sealed', 'held') ORDER BY counter LIMIT ?",
                         (block_id, limit))
        return [{"counter": r[0], "request": json.loads(r[1]), "seal": json.loads(r[2])["seal"],
                 "buyer_salt": r[3], "hash": r[4]} for r in rows]

    def record_receipts(self, block_id: str, receipts: list[tuple[int, str, dict[str, Any]]], at: str) -> None:
        """``(counter, outcome, receipt)`` from one answer, written in one transaction."""
        with self.write() as db:
            db.executemany("UPDATE invoices SET status = ?, receipt = ?, uploaded_at = ? WHERE block_id = ? AND counter = ?",
                           [(outcome, json.dumps(receipt), at, block_id, counter) for counter, outcome, receipt in receipts])

    def counts(self) -> dict[str, int]:
        return {status: n for status, n in self.read("SELECT status, count(*) FROM invoices GROUP BY status")}

    def invoice(self, invoice_id: str) -> dict[str, Any] | None:
        rows = self.read("SELECT document, status, receipt FROM invoices WHERE invoice_id = ?", (invoice_id,))
        if not rows:
            return None
        return {**json.loads(rows[0][0]), "upload": {"status": rows[0][1],
                                                    "receipt": json.loads(rows[0][2]) if rows[0][2] else None}}

    def chain(self, block_id: str) -> list[tuple[int, str, str]]:
        """``(counter, prev_hash, hash)`` of a block's invoices in order (for checks and tests)."""
        out = []
        for counter, document, seal_hash in self.read(
                "SELECT counter, document, seal_hash FROM invoices WHERE block_id = ? ORDER BY counter", (block_id,)):
            out.append((counter, json.loads(document)["seal"]["payload"]["prev_hash"], seal_hash))
        return out


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
