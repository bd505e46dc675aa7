"""Running the ledger verifier over an audit export or a live database (``stalela verify``)."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator

from stalela.db.session import Database
from stalela.fiscal.core import merkle
from stalela.fiscal.core.seal import verify_seal
from stalela.fiscal.invoices.models import Invoice
from stalela.fiscal.invoices.service import render
from stalela.fiscal.ledger.events import render_event
from stalela.fiscal.reports.export import (FORMAT, MEMBERS, MEMBERS_V1, ledger_pages, tenant_checkpoints,
                                           tenant_credentials, tenant_keys)
from stalela.fiscal.ledger.repository import MerkleRepository
from stalela.fiscal.ledger.verify import LedgerVerifier, Report
from stalela.fiscal.ledger.verify_offline import VOID_GRACE
from stalela.tenancy.context import bind_tenant

Progress = Callable[[int], None]


class UnusableInput(Exception):
    """Not a ledger we can check at all (not an export, unreadable, unknown tenant): exit code 2."""


class _HashingReader:
    """Reads a tar member line by line while hashing it, so its SHA-256 is checked in the same pass."""

    def __init__(self, raw: io.BufferedReader) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def lines(self) -> Iterator[bytes]:
        for line in self.raw:
            self.digest.update(line)
            self.size += len(line)
            yield line

    def read_all(self) -> bytes:
        data = b"".join(self.lines())
        return data


def _json(data: bytes, name: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise UnusableInput(f"{name} is not valid JSON: {exc}") from None


def verify_export(path: Path, *, pinned_keys: list[dict[str, Any]] | None = None,
                  progress: Progress | None = None, void_grace: timedelta = VOID_GRACE) -> Report:
    """Stream an export once. ``pinned_keys``: keys obtained out of band (e.g. the service's
    /.well-known/jwks.json), which an auditor should prefer over the keys inside the export.
    ``void_grace``: the service's STALELA_OFFLINE_VOID_GRACE_HOURS (unused numbers are voided by then)."""
    try:
        tar = tarfile.open(path, "r|gz")
    except (OSError, tarfile.TarError) as exc:
        raise UnusableInput(f"cannot open {path}: {exc}") from None
    verifier: LedgerVerifier | None = None
    manifest: dict[str, Any] | None = None
    seen: dict[str, tuple[str, int]] = {}
    try:
        for member in tar:
            raw = tar.extractfile(member)
            if raw is None:
                continue
            reader = _HashingReader(raw)
            if member.name == "manifest.json":
                manifest = _json(reader.read_all(), "manifest.json")
                payload = manifest.get("payload") if isinstance(manifest, dict) else None
                if not isinstance(payload, dict) or payload.get("format") != FORMAT:
                    raise UnusableInput("not a Stalela audit export (manifest format)")
                continue
            if manifest is None:
                raise UnusableInput("manifest.json must be the first member")
            payload = manifest["payload"]
            if member.name == "keys.json":
                jwks = pinned_keys if pinned_keys is not None else _json(reader.read_all(), "keys.json").get("keys", [])
                if pinned_keys is not None:
                    reader.read_all()
                verifier = LedgerVerifier(payload.get("tenant_id"), jwks, complete=bool(payload.get("complete")),
                                          void_grace=void_grace)
                check = verify_seal(manifest, verifier.keys.get(manifest.get("key_id")))
                if not check:
                    verifier.fail("manifest_invalid", check.reason or "invalid signature")
            elif verifier is None:
                raise UnusableInput("keys.json must come right after the manifest")
            elif member.name == "credentials.jsonl":
                verifier.credentials(_json(line, member.name) for line in reader.lines())
            elif member.name == "checkpoints.jsonl":
                verifier.checkpoints(_json(line, member.name) for line in reader.lines())
            elif member.name == "consistency.jsonl":
                for line in reader.lines():
                    verifier.consistency(_json(line, member.name))
            elif member.name == "invoices.jsonl":
                for n, line in enumerate(reader.lines(), 1):
                    entry = _json(line, member.name)
                    if isinstance(entry, dict) and "event" in entry:
                        ev = {**(entry.get("event") or {}), "leaf_index": entry.get("leaf_index")}
                        verifier.event(ev)
                        if entry.get("inclusion_proof"):
                            verifier.inclusion(entry["inclusion_proof"], (ev.get("seal") or {}).get("hash", ""),
                                               {"event_id": ev.get("id"), "block_id": ev.get("block_id"),
                                                "leaf_index": ev.get("leaf_index")})
                        continue
                    inv = {**(entry.get("invoice") or {}), "leaf_index": entry.get("leaf_index")}
                    verifier.invoice(inv)
                    if entry.get("inclusion_proof"):
                        verifier.inclusion(entry["inclusion_proof"], inv.get("seal", {}).get("hash", ""),
                                           {"invoice_id": inv.get("id"), "fiscal_number": inv.get("fiscal_number"),
                                            "outlet_id": inv.get("outlet_id"), "counter": inv.get("counter"),
                                            "leaf_index": inv.get("leaf_index")})
                    if progress and n % 1000 == 0:
                        progress(1000)
            else:
                verifier.fail("unexpected_file", f"{member.name} is not listed in the manifest")
                reader.read_all()
            seen[member.name] = (reader.digest.hexdigest(), reader.size)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UnusableInput(f"corrupt archive: {exc}") from None
    finally:
        tar.close()
    if manifest is None or verifier is None:
        raise UnusableInput("the archive lacks manifest.json or keys.json")
    for entry in manifest["payload"].get("files", []):
        got = seen.get(entry.get("name"))
        if got is None:
            verifier.fail("file_missing", f"{entry.get('name')} is listed in the manifest but absent")
        elif got != (entry.get("sha256"), entry.get("bytes")):
            verifier.fail("file_altered", f"{entry.get('name')} does not match its SHA-256 in the manifest")
    # Version 1 exports (before offline sealing) have no credentials.
    required = MEMBERS if (manifest["payload"].get("version") or 1) >= 2 else MEMBERS_V1
    missing = [m for m in required if m not in seen]
    for name in missing:
        if not any(e.get("name") == name for e in manifest["payload"].get("files", [])):
            verifier.fail("file_missing", f"{name} is absent")
    return verifier.finish()


async def verify_database(db: Database, tenant_id: str, *, progress: Progress | None = None,
                          void_grace: timedelta = VOID_GRACE) -> Report:
    """Verify a tenant's ledger straight from the database, including the stored Merkle leaves."""
    async with db.transaction(readonly=True) as session:
        await bind_tenant(session, tenant_id)
        jwks = await tenant_keys(session)
        if not jwks:
            raise UnusableInput(f"tenant {tenant_id} has no signing keys here (unknown tenant?)")
        verifier = LedgerVerifier(tenant_id, jwks, complete=True, void_grace=void_grace)
        verifier.credentials(await tenant_credentials(session, tenant_id))
        verifier.checkpoints(await tenant_checkpoints(session))
        repo = MerkleRepository(session)
        async for rows in ledger_pages(session):
            stored = await repo.nodes([(0, row.leaf_index) for row in rows])
            for row in rows:
                leaf = stored.get((0, row.leaf_index))
                if not isinstance(row, Invoice):
                    verifier.event({**render_event(row), "leaf_index": row.leaf_index}, leaf,
                                   {"seal_hash": row.seal_hash, "key_id": row.key_id, "series_id": row.series_id})
                    continue
                columns = {"fiscal_number": row.fiscal_number, "counter": row.counter, "outlet_id": row.outlet_id,
                           "type": row.type, "seal_hash": row.seal_hash, "key_id": row.key_id,
                           "total_cents": row.total_cents}
                verifier.invoice({**render(row), "leaf_index": row.leaf_index}, leaf, columns)
            if progress:
                progress(len(rows))
        log = await repo.read_log(tenant_id)
        report = verifier.finish()
        if log is not None and log.size != report.invoices + report.events:
            verifier.fail("log_size_mismatch", f"the log has {log.size} leaves for {report.invoices} invoices and "
                          f"{report.events} ledger events")
        return report
