"""Offline verification of a tenant's fiscal ledger, in one streaming pass and bounded memory.

Fed by a source (an audit export or a live database, see ``fiscal/reports/audit.py``): the public keys,
the delegated credentials and the checkpoints (few), then every record of the log in leaf order (many,
streamed): invoices and cloud-sealed ledger events (``fiscal.ledger.events``) merged. Checks, naming the
first failure exactly:
- every seal's hash and ES256 signature against the published key, and its lines digest; an offline
  invoice's against the device key its credential binds, the credential against the tenant's keys;
- the sealed document agrees with what was signed (a changed amount cannot hide in the document);
- per series (outlet): counters 1..n with no gap or duplicate, each prev_hash the previous hash; a
  ``number_block`` record takes its whole range's place in the series;
- inside each block, every number accounted for once, in order (``verify_offline``);
- leaves are contiguous from 0 and the recomputed Merkle root equals every checkpoint's root;
- every checkpoint's signature, every consistency proof, every inclusion proof supplied.
Memory: one compact range, the last hash and counter per series, the checkpoints, the credentials and
a ``BlockChain`` per open block.
"""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable


from stalela.fiscal.core import merkle
from stalela.fiscal.core.invoice import document_mismatch
from stalela.fiscal.core import offline as core_offline
from stalela.fiscal.core.seal import verify_seal
from stalela.fiscal.ledger.verify_offline import VOID_GRACE, OfflineLedger, epoch

MAX_FAILURES = 50


@dataclass
class Failure:
    what: str
    detail: str
    invoice_id: str | None = None
    outlet_id: str | None = None
    counter: int | None = None
    fiscal_number: str | None = None
    checkpoint_id: str | None = None
    leaf_index: int | None = None
    event_id: str | None = None
    block_id: str | None = None
    credential: str | None = None

    def describe(self) -> str:
        where = [f"{k}={v}" for k, v in (("outlet", self.outlet_id), ("counter", self.counter),
                                           ("fiscal_number", self.fiscal_number), ("invoice", self.invoice_id),
                                           ("event", self.event_id), ("block", self.block_id),
                                           ("credential", self.credential),
                                           ("leaf", self.leaf_index), ("checkpoint", self.checkpoint_id))
                 if v is not None]
        return f"{self.what}: {self.detail}" + (f" [{', '.join(where)}]" if where else "")


@dataclass
class Report:
    tenant_id: str | None = None
    invoices: int = 0
    events: int = 0  # cloud-sealed ledger events (blocks, refusals, voids, un-voids)
    offline_invoices: int = 0
    credentials: int = 0
    blocks: int = 0
    voids: int = 0
    series: int = 0
    checkpoints: int = 0
    checkpoints_matched: int = 0
    inclusion_proofs: int = 0
    consistency_proofs: int = 0
    complete: bool = True
    failures: list[Failure] = field(default_factory=list)
    failure_count: int = 0

    @property
    def valid(self) -> bool:
        return self.failure_count == 0

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["valid"] = self.valid
        out["first_failure"] = asdict(self.failures[0]) if self.failures else None
        return out


@dataclass
class _SeriesState:
    counter: int
    last_hash: str


class LedgerVerifier:
    def __init__(self, tenant_id: str, jwks: Iterable[dict[str, Any]], *, complete: bool = True,
                 void_grace: timedelta = VOID_GRACE) -> None:
        """``complete``: the stream starts at leaf 0 (a whole ledger, not a date range). ``void_grace``: how
        long after a credential's exp its block's unused numbers must be voided (the service's setting)."""
        self.report = Report(tenant_id=tenant_id, complete=complete)
        self.keys = {k.get("kid"): k for k in jwks}
        self._series: dict[str, _SeriesState] = {}
        self._tree = merkle.CompactRange()
        self._next_leaf: int | None = 0 if complete else None
        self._pending_checkpoints: list[dict[str, Any]] = []
        self._checkpoint_roots: dict[int, str] = {}
        self._last_checkpoint: tuple[int, float | None] | None = None  # (tree_size, signed timestamp)
        self.offline = OfflineLedger(tenant_id, self.keys.get, self.fail, complete=complete, void_grace=void_grace)

    def fail(self, what: str, detail: str, **where: Any) -> None:
        self.report.failure_count += 1
        if len(self.report.failures) < MAX_FAILURES:
            self.report.failures.append(Failure(what, detail, **where))

    # --- checkpoints ------------------------------------------------------------------------------

    def checkpoints(self, checkpoints: Iterable[dict[str, Any]]) -> None:
        ordered = sorted(checkpoints, key=lambda c: (c.get("tree_size", -1), c.get("id", "")))
        for cp in ordered:
            self.report.checkpoints += 1
            where = {"checkpoint_id": cp.get("id")}
            seal = cp.get("seal") or {}
            check = verify_seal(seal, self.keys.get(seal.get("key_id")))
            if not check:
                self.fail("checkpoint_seal_invalid", check.reason or "invalid", **where)
                continue
            payload = seal["payload"]
            if (payload.get("tree_size"), payload.get("root_hash"), payload.get("tenant_id")) != (
                    cp.get("tree_size"), cp.get("root_hash"), self.report.tenant_id):
                self.fail("checkpoint_mismatch", "stored tree_size/root_hash/tenant differ from the signed payload",
                          **where)
                continue
            earlier = self._checkpoint_roots.get(payload["tree_size"])
            if earlier is not None and earlier != payload["root_hash"]:
                self.fail("checkpoint_fork", f"two signed roots for tree size {payload['tree_size']}", **where)
            self._checkpoint_roots[payload["tree_size"]] = payload["root_hash"]
            if self._last_checkpoint is None or payload["tree_size"] >= self._last_checkpoint[0]:
                self._last_checkpoint = (payload["tree_size"], epoch(payload.get("timestamp")))
            if payload["tree_size"] == 0:
                if payload["root_hash"] != merkle.EMPTY_ROOT.hex():
                    self.fail("checkpoint_root_mismatch", "an empty log has a fixed root", **where)
            elif self.report.complete:
                self._pending_checkpoints.append(cp)

    def consistency(self, proof: dict[str, Any]) -> None:
        self.report.consistency_proofs += 1
        first, second = proof.get("first"), proof.get("second")
        r1, r2 = self._checkpoint_roots.get(first), self._checkpoint_roots.get(second)
        if r1 is None or r2 is None:
            self.fail("consistency_proof_unanchored", f"no signed checkpoint for sizes {first} and {second}")
            return
        path = _hexes(proof.get("consistency_path"))
        if path is None or not merkle.verify_consistency(first, second, bytes.fromhex(r1), bytes.fromhex(r2), path):
            self.fail("consistency_proof_invalid", f"log of size {second} is not an extension of size {first}")

    def inclusion(self, proof: dict[str, Any], seal_hash_hex: str, where: dict[str, Any]) -> None:
        self.report.inclusion_proofs += 1
        root = self._checkpoint_roots.get(proof.get("tree_size"))
        path = _hexes(proof.get("audit_path"))
        if root is None or path is None or not merkle.verify_inclusion(
                merkle.seal_leaf_hash(seal_hash_hex), proof.get("leaf_index", -1), proof["tree_size"], path,
                bytes.fromhex(root)):
            self.fail("inclusion_proof_invalid", f"not in the log of size {proof.get('tree_size')}", **where)

    # --- offline: credentials and ledger events ----------------------------------------------------

    def credentials(self, credentials: Iterable[dict[str, Any]]) -> None:
        """The tenant's delegated credentials (``{"jti", "token", ...}``): before the first record."""
        for entry in credentials:
            self.offline.credential(entry)

    def event(self, ev: dict[str, Any], stored_leaf_hash: bytes | None = None,
              columns: dict[str, Any] | None = None) -> None:
        """A cloud-sealed ledger event (``fiscal.ledger.events.render_event`` plus ``leaf_index``)."""
        self.report.events += 1
        seal = ev.get("seal") or {}
        payload = seal.get("payload") if isinstance(seal.get("payload"), dict) else {}
        where = {"event_id": ev.get("id"), "block_id": payload.get("block_id") or ev.get("block_id"),
                 "outlet_id": payload.get("outlet_id"), "leaf_index": ev.get("leaf_index")}
        check = verify_seal(seal, self.keys.get(seal.get("key_id")))
        if not check:
            self.fail("event_seal_invalid", check.reason or "invalid", **where)
        else:
            if payload.get("tenant_id") != self.report.tenant_id:
                self.fail("wrong_tenant", f"sealed for tenant {payload.get('tenant_id')}", **where)
            if (ev.get("kind"), ev.get("block_id"), ev.get("outlet_id")) != (
                    payload.get("kind"), payload.get("block_id"), payload.get("outlet_id")):
                self.fail("event_altered", "kind, block or outlet differs from the sealed values", **where)
            if columns is not None:
                for name, value in (("seal_hash", seal.get("hash")), ("key_id", seal.get("key_id")),
                                    ("series_id", payload.get("series_id"))):
                    if name in columns and columns[name] != value:
                        self.fail("row_altered", f"column {name} differs from the sealed value", **where)
        kind = payload.get("kind")
        if kind == core_offline.BLOCK:
            self._block_in_series(payload, seal.get("hash", ""), where)
        elif kind in core_offline.KINDS:
            self.offline.record(payload, seal.get("hash", ""), where)
        else:
            self.fail("event_kind_unknown", f"kind {kind!r} is not a ledger event's", **where)
        self._leaf(ev, seal.get("hash", ""), stored_leaf_hash, where)

    def _block_in_series(self, payload: dict[str, Any], seal_hash: str, where: dict[str, Any]) -> None:
        """A block takes counters first..last of its series: it chains to the series head, the next
        record of the series (online invoice or block) to its hash."""
        series_first = self.offline.block_opened(payload, seal_hash, where)
        first, last = payload.get("first"), payload.get("last")
        if not isinstance(first, int) or not isinstance(last, int):
            return
        series_id = payload.get("series_id")
        state = self._series.get(series_id)
        if state is None:
            self.report.series += 1
            if self.report.complete and first != series_first:
                self.fail("counter_gap", f"series starts at counter {first}, expected {series_first}", **where)
            elif first == series_first and payload.get("prev_hash") != "0" * 64:
                self.fail("chain_broken", "the series' first record's prev_hash is not 64 zeros", **where)
        elif first <= state.counter:
            self.fail("counter_duplicate", f"block {first}..{last} overlaps counter {state.counter}", **where)
        elif first != state.counter + 1:
            self.fail("counter_gap", f"expected counter {state.counter + 1}, the block starts at {first}", **where)
        elif payload.get("prev_hash") != state.last_hash:
            self.fail("chain_broken", "the block's prev_hash is not the series head", **where)
        self._series[series_id] = _SeriesState(last, seal_hash)

    # --- invoices ---------------------------------------------------------------------------------

    def invoice(
        self, inv: dict[str, Any], stored_leaf_hash: bytes | None = None, columns: dict[str, Any] | None = None
    ) -> None:
        """``columns``: in database mode, the row's indexed columns, which must agree with the seal."""
        self.report.invoices += 1
        seal = inv.get("seal") or {}
        payload = seal.get("payload") or {}
        where = {"invoice_id": inv.get("id"), "outlet_id": inv.get("outlet_id"), "counter": inv.get("counter"),
                 "fiscal_number": inv.get("fiscal_number"), "leaf_index": inv.get("leaf_index")}
        offline = isinstance(payload, dict) and "offline" in payload
        if offline:
            # Signed by the device: with the key its credential binds, never a key of the tenant's.
            jwk = self.offline.device_key(payload.get("offline"))
            check = verify_seal(seal, jwk) if jwk is not None else None
        else:
            check = verify_seal(seal, self.keys.get(seal.get("key_id")))
        if offline and check is None:
            pass  # the credential is missing or invalid: reported where its block is placed
        elif not check:
            self.fail("offline_seal_invalid" if offline else "seal_invalid", check.reason or "invalid", **where)
        else:
            self._document_matches(inv, payload, where)
            if columns is not None:
                self._columns_match(columns, seal, where)
        # The chain is followed on the signed payload even when its seal fails, so one altered
        # invoice is reported once instead of starting a phantom series.
        if offline:
            self.report.offline_invoices += 1
            self.offline.invoice(payload, seal.get("hash", ""), where)
        else:
            self._chain(payload or inv, seal.get("hash", ""), where)
        self._leaf(inv, seal.get("hash", ""), stored_leaf_hash, where)

    def _document_matches(self, inv: dict[str, Any], payload: dict[str, Any], where: dict[str, Any]) -> None:
        if payload.get("tenant_id") != self.report.tenant_id:
            self.fail("wrong_tenant", f"sealed for tenant {payload.get('tenant_id')}", **where)
        mismatch = document_mismatch(inv, payload)
        if mismatch is not None:
            self.fail(*mismatch, **where)

    def _columns_match(self, columns: dict[str, Any], seal: dict[str, Any], where: dict[str, Any]) -> None:
        payload = seal["payload"]
        expected = {"fiscal_number": payload.get("fiscal_number"), "counter": payload.get("counter"),
                    "outlet_id": payload.get("outlet_id"), "type": payload.get("type"), "seal_hash": seal["hash"],
                    "key_id": seal["key_id"], "total_cents": _cents(payload.get("total"))}
        for name, value in expected.items():
            if name in columns and columns[name] != value:
                self.fail("row_altered", f"column {name} ({columns[name]}) differs from the sealed value ({value})",
                          **where)
                return

    def _chain(self, signed: dict[str, Any], seal_hash: str, where: dict[str, Any]) -> None:
        series_id = signed.get("series_id") or signed.get("outlet_id")
        counter = signed.get("counter")
        state = self._series.get(series_id)
        # A series aligned with the authority's numbering before its first seal (Argentina) starts at
        # the number every one of its payloads states as series_first; others start at 1.
        first = signed.get("series_first", 1)
        if state is None:
            self.report.series += 1
            if self.report.complete and counter != first:
                self.fail("counter_gap", f"series starts at counter {counter}, expected {first}", **where)
            elif counter == first and signed.get("prev_hash") != "0" * 64:
                self.fail("chain_broken", "the first invoice's prev_hash is not 64 zeros", **where)
        else:
            if counter == state.counter:
                self.fail("counter_duplicate", f"counter {counter} appears twice", **where)
            elif counter != state.counter + 1:
                self.fail("counter_gap", f"expected counter {state.counter + 1}, found {counter}", **where)
            elif signed.get("prev_hash") != state.last_hash:
                self.fail("chain_broken", "prev_hash is not the previous invoice's seal hash", **where)
        if isinstance(counter, int):
            self._series[series_id] = _SeriesState(counter, seal_hash)

    def _leaf(self, inv: dict[str, Any], seal_hash: str, stored: bytes | None, where: dict[str, Any]) -> None:
        index = inv.get("leaf_index")
        if self._next_leaf is None:  # a partial export: start wherever it starts, then stay contiguous
            self._next_leaf = index
        if index != self._next_leaf:
            self.fail("leaf_out_of_order", f"expected leaf {self._next_leaf}, found {index}", **where)
        self._next_leaf = (index if isinstance(index, int) else self._next_leaf) + 1
        try:
            leaf = merkle.seal_leaf_hash(seal_hash)
        except ValueError:
            return  # already reported as an invalid seal
        if stored is not None and stored != leaf:
            self.fail("leaf_mismatch", "the stored Merkle leaf is not this invoice's seal hash", **where)
        if not self.report.complete:
            return
        self._tree.append(leaf)
        while self._pending_checkpoints and self._pending_checkpoints[0]["tree_size"] <= self._tree.size:
            cp = self._pending_checkpoints.pop(0)
            if cp["tree_size"] == self._tree.size:
                if self._tree.root().hex() == cp["root_hash"]:
                    self.report.checkpoints_matched += 1
                else:
                    self.fail("checkpoint_root_mismatch",
                              f"recomputed root of the first {cp['tree_size']} leaves differs from the signed root",
                              checkpoint_id=cp["id"], leaf_index=cp["tree_size"] - 1)

    def finish(self) -> Report:
        self.offline.finish(self._last_checkpoint[1] if self._last_checkpoint else None)
        self.report.credentials = self.offline.counts["credentials"]
        self.report.blocks = self.offline.counts["blocks"]
        self.report.voids = self.offline.counts["voids"]
        if self.report.complete:
            for cp in self._pending_checkpoints:
                self.fail("checkpoint_beyond_ledger",
                          f"checkpoint covers {cp['tree_size']} leaves, the ledger has {self._tree.size}",
                          checkpoint_id=cp["id"])
        return self.report


def _cents(total: Any) -> int | None:
    try:
        return int(Decimal(total) * 100)
    except (TypeError, ArithmeticError, ValueError):
        return None


def _hexes(values: Any) -> list[bytes] | None:
    try:
        return [bytes.fromhex(v) for v in values]
    except (TypeError, ValueError):
        return None
