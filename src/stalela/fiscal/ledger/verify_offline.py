"""The offline side of ``stalela verify``: delegated credentials, number blocks, and every record that
accounts for a block's numbers (offline invoices, refusals, voids, un-voids), checked with the very rules
the merge applies (``core.offline.BlockChain``).

A third party can do all of it with the tenant's public keys alone: a credential is a JWS by a tenant key
(checked at an instant inside its own validity: an archive's credentials have all expired, which is no
fault, but one valid for more than 7 days is refused whoever signed it); an offline invoice is signed by
the device key the credential binds (``cnf.jwk``), so it verifies with that key and nothing else.

Each offline invoice is also checked against its credential's caps (``max_invoice_total`` against the
signed ``total``, ``invoice_types`` against ``type``, ``tax_groups`` against the signed totals' groups) and
against the credential's revocation time (``revoked_at`` of its record: not signed, so its failure says so).

A partial export (a date range) starts in the middle of the log: a block allocated before its range is not
placed (what happened to its numbers before the range is not in the export); its records in the range are
checked for everything else (seals, credential, time, caps, revocation, series), and a block no credential
states is still unknown. At the end of a whole ledger, numbers neither used nor voided of a block whose
credential expired more than the void grace before the last checkpoint are named.

Memory: one small record per credential, and a ``BlockChain`` per block still open (a closed block is
forgotten, but for its id, unless it has voids a late invoice may yet reopen).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Callable

from stalela.fiscal.core import offline as core
from stalela.fiscal.core.seal import b64url_decode

Fail = Callable[..., None]
VOID_GRACE = timedelta(hours=24)  # STALELA_OFFLINE_VOID_GRACE_HOURS' default

# How late past expiry + grace a void may be sealed before a verifier calls the block unvoided.
VOID_SLACK = timedelta(days=1)


@dataclass
class Credential:
    jti: str
    jwk: dict[str, Any]  # the device key (cnf.jwk), kid = its thumbprint
    block: dict[str, Any]
    series: str
    series_first: int
    nbf: int
    exp: int
    caps: dict[str, Any] = field(default_factory=dict)
    revoked_at: str | None = None  # from the credential's record (unsigned)


@dataclass
class Block:
    chain: core.BlockChain
    series_id: str
    credential: str
    device_key: str
    expires_at: float | None = None


def _unverified_claims(token: Any) -> dict[str, Any] | None:
    try:
        claims = json.loads(b64url_decode(token.split(".")[1]))
    except Exception:  # noqa: BLE001 - hostile input: reported by the real check below
        return None
    return claims if isinstance(claims, dict) else None


def epoch(text: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class OfflineLedger:
    def __init__(self, tenant_id: str | None, issuer_key: Callable[[str], dict[str, Any] | None], fail: Fail, *,
                 complete: bool = True, void_grace: timedelta = VOID_GRACE) -> None:
        self.tenant_id = tenant_id
        self.issuer_key = issuer_key
        self.fail = fail
        self.complete = complete
        self.void_grace = void_grace
        self.credentials: dict[str, Credential] = {}
        self.by_block: dict[str, Credential] = {}
        self.blocks: dict[str, Block | None] = {}  # None: closed and forgotten
        self.before_range: set[str] = set()  # partial export: blocks allocated before it, not placed
        self.counts = {"credentials": 0, "blocks": 0, "voids": 0}

    # --- credentials ------------------------------------------------------------------------------

    def credential(self, entry: dict[str, Any]) -> None:
        self.counts["credentials"] += 1
        jti, token = entry.get("jti"), entry.get("token")
        where = {"credential": jti}
        unverified = _unverified_claims(token) if isinstance(token, str) else None
        nbf = unverified.get("nbf") if unverified else None
        # Checked as of its own first valid second: whether it has expired since is no question for an archive.
        at = datetime.fromtimestamp(nbf, tz=timezone.utc) if isinstance(nbf, int) else datetime.now(timezone.utc)
        try:
            claims = core.verify_credential(token, self.issuer_key, at)
        except core.CredentialInvalid as exc:
            kind = "offline_credential_lifetime" if exc.code == "credential_lifetime" else "offline_credential_invalid"
            self.fail(kind, f"credential {jti}: {exc.code}: {exc}", **where)
            return
        if claims["jti"] != jti or claims["tenant_id"] != self.tenant_id:
            self.fail("offline_credential_mismatch", f"credential {jti}: its claims name {claims['jti']} of tenant "
                      f"{claims['tenant_id']}", **where)
            return
        caps = claims.get("caps") if isinstance(claims.get("caps"), dict) else {}
        revoked = entry.get("revoked_at")
        cred = Credential(jti, core.device_public_jwk(claims["cnf"]["jwk"]), claims["block"], claims["series"],
                          int(claims.get("series_first", 1)), claims["nbf"], claims["exp"], caps,
                          revoked if isinstance(revoked, str) else None)
        self.credentials[jti] = cred
        self.by_block[str(claims["block"].get("id"))] = cred

    def device_key(self, offline: Any) -> dict[str, Any] | None:
        cred = self.credentials.get(offline.get("credential")) if isinstance(offline, dict) else None
        return cred.jwk if cred else None

    # --- blocks and their records -----------------------------------------------------------------

    def block_opened(self, payload: dict[str, Any], seal_hash: str, where: dict[str, Any]) -> int:
        """A ``number_block`` record: its block is followed from its anchor; returns the series' first number
        as its credential states it (1 when the credential is not at hand)."""
        block_id, jti = payload.get("block_id"), payload.get("credential")
        self.counts["blocks"] += 1
        first, last = payload.get("first"), payload.get("last")
        if not isinstance(first, int) or not isinstance(last, int) or last < first:
            self.fail("offline_block_malformed", "first and last are integers, first <= last", **where)
            return 1
        cred = self.credentials.get(jti)
        if cred is None:
            self.fail("offline_credential_missing", f"credential {jti} of block {block_id} is not in the ledger",
                      **where)
        elif (cred.block.get("id"), cred.block.get("first"), cred.block.get("last"), cred.block.get("anchor"),
              cred.jwk["kid"], cred.series) != (block_id, first, last, seal_hash, payload.get("device_key"),
                                                payload.get("series_id")):
            self.fail("offline_credential_mismatch", f"credential {jti} does not state block {block_id} as sealed",
                      **where)
        if block_id in self.blocks:
            self.fail("offline_block_duplicate", f"block {block_id} is allocated twice", **where)
        expires = epoch(payload.get("expires_at"))
        self.blocks[block_id] = Block(core.BlockChain.open(block_id, first, last, seal_hash),
                                      payload.get("series_id"), jti, payload.get("device_key"),
                                      expires if expires is not None else (cred.exp if cred else None))
        return cred.series_first if cred else 1

    def _chain_of(self, block_id: Any, series_id: Any, where: dict[str, Any]) -> Block | None:
        if block_id not in self.blocks:
            cred = self.by_block.get(block_id) if isinstance(block_id, str) else None
            if not self.complete and cred is not None:
                # Allocated before a partial export's range: not placed (its earlier numbers are not here).
                self.before_range.add(block_id)
                if series_id != cred.series:
                    self.fail("offline_series_mismatch", f"the record names series {series_id}, its credential "
                              f"{cred.series}", **where)
                return None
            self.fail("offline_block_unknown", f"block {block_id} was never allocated before this record", **where)
            return None
        block = self.blocks[block_id]
        if block is None:
            self.fail("offline_block_closed", f"every number of block {block_id} was already accounted for",
                      **where)
        return block

    def _settle(self, block_id: str, block: Block) -> None:
        if block.chain.closed and not block.chain.voids:
            self.blocks[block_id] = None

    def _numbers(self, payload: dict[str, Any], names: tuple[str, ...], where: dict[str, Any]) -> bool:
        if all(isinstance(payload.get(n), int) and not isinstance(payload.get(n), bool) for n in names):
            return True
        self.fail("offline_record_malformed", f"{', '.join(names)} must be integers", **where)
        return False

    def record(self, payload: dict[str, Any], seal_hash: str, where: dict[str, Any]) -> None:
        """A cloud-sealed refusal, void or un-void: it must fit where its block stands."""
        kind, block_id = payload.get("kind"), payload.get("block_id")
        if not self._numbers(payload, ("counter",) if kind == core.REFUSAL else ("first", "last"), where):
            return
        block = self._chain_of(block_id, payload.get("series_id"), where)
        if block is None:
            return
        if payload.get("series_id") != block.series_id:
            self.fail("offline_series_mismatch", f"the record names series {payload.get('series_id')}", **where)
        chain = block.chain
        if kind == core.REFUSAL:
            refused = chain.place(payload.get("counter"), payload.get("prev_hash"))
            if refused is None:
                chain.advance(payload["counter"], payload.get("device_hash"))
        elif kind == core.VOID:
            self.counts["voids"] += 1
            if payload.get("reason") not in core.VOID_REASONS:
                self.fail("offline_void_reason", f"reason {payload.get('reason')!r} is not a void's", **where)
            refused = chain.void(payload.get("first"), payload.get("last"), payload.get("prev_hash"), seal_hash,
                                 reason=payload.get("reason"))
        else:  # core.UNVOID
            refused = chain.unvoid(payload.get("void"), payload.get("first"), payload.get("last"),
                                   payload.get("prev_hash"))
        if refused is not None:
            self.fail(refused, f"{kind} at {payload.get('first', payload.get('counter'))} does not fit block "
                      f"{block_id} (next {chain.next})", **where)
        self._settle(block_id, block)

    def invoice(self, payload: dict[str, Any], seal_hash: str, where: dict[str, Any]) -> None:
        """An offline invoice: from its credential, inside its block's time and numbers, chained in order."""
        offline = payload.get("offline") if isinstance(payload.get("offline"), dict) else {}
        cred = self.credentials.get(offline.get("credential"))
        if cred is None:
            self.fail("offline_credential_missing", f"credential {offline.get('credential')} is not in the ledger",
                      **where)
        else:
            if offline.get("block_id") != cred.block.get("id"):
                self.fail("offline_credential_mismatch", f"block {offline.get('block_id')} is not the credential's",
                          **where)
            at = epoch(payload.get("issued_at"))
            if at is None or not cred.nbf <= at < cred.exp:
                self.fail("offline_time_outside_credential",
                          f"issued_at {payload.get('issued_at')} is outside the credential's validity", **where)
            self._caps(cred, payload, where)
            revoked = epoch(cred.revoked_at) if cred.revoked_at else None
            if revoked is not None and at is not None and at >= revoked:
                self.fail("offline_after_revocation", f"issued_at {payload.get('issued_at')} is at or after the "
                          f"credential's revocation at {cred.revoked_at} (the time its record states: unsigned)",
                          **where)
        block = self._chain_of(offline.get("block_id"), payload.get("series_id"), where)
        if block is None or not self._numbers(payload, ("counter",), where):
            return
        if payload.get("series_id") != block.series_id:
            self.fail("offline_series_mismatch", f"the invoice names series {payload.get('series_id')}", **where)
        refused = block.chain.place(payload.get("counter"), payload.get("prev_hash"))
        if refused is not None:
            self.fail(refused, f"counter {payload.get('counter')} does not fit block {block.chain.block_id} "
                      f"(next {block.chain.next})", **where)
            return
        block.chain.advance(payload["counter"], seal_hash)
        self._settle(offline.get("block_id"), block)

    def _caps(self, cred: Credential, payload: dict[str, Any], where: dict[str, Any]) -> None:
        """The credential's caps, as the merge applies them (a cap the credential lacks allows nothing)."""
        caps = cred.caps
        if payload.get("type") not in (caps.get("invoice_types") or ()):
            self.fail("offline_type_not_allowed", f"type {payload.get('type')} is not in the credential's "
                      f"invoice_types {caps.get('invoice_types')}", **where)
        totals = payload.get("totals") if isinstance(payload.get("totals"), dict) else {}
        groups = {str(g.get("group")) for g in totals.get("groups") or () if isinstance(g, dict)}
        outside = sorted(groups - set(caps.get("tax_groups") or ()))
        if outside:
            self.fail("offline_tax_group_not_allowed", f"tax groups {', '.join(outside)} are not in the "
                      f"credential's tax_groups {caps.get('tax_groups')}", **where)
        try:
            over = Decimal(str(payload.get("total"))) > Decimal(str(caps.get("max_invoice_total")))
        except InvalidOperation:
            over = True
        if over:
            self.fail("offline_cap_exceeded", f"total {payload.get('total')} is above the credential's "
                      f"max_invoice_total {caps.get('max_invoice_total')}", **where)

    def finish(self, last_checkpoint_at: float | None = None) -> None:
        """End of the stream. Only a whole ledger has an end: a partial export's blocks go on after it.
        ``last_checkpoint_at``: the last signed checkpoint's time (epoch seconds), if any."""
        if not self.complete:
            return
        for block_id, block in self.blocks.items():
            if block is None:
                continue
            if block.chain.window is not None:
                self.fail("offline_unvoid_unfilled", f"block {block_id}: numbers reopened by an un-void never "
                          f"came (next {block.chain.window['next']})", block_id=block_id)
                continue
            tail = core.unused_tail(block.chain)
            # A day's slack past the grace: the void scheduler runs every few minutes, and a worker restarting
            # must not turn a healthy ledger (or a tenant move's verification) red; a day late is a fault.
            due = (block.expires_at + self.void_grace.total_seconds() + VOID_SLACK.total_seconds()
                   if block.expires_at is not None else None)
            if tail is not None and due is not None and last_checkpoint_at is not None and due < last_checkpoint_at:
                self.fail("offline_block_unvoided", f"block {block_id}: numbers {tail[0]}..{tail[1]} are neither "
                          f"used nor voided, though its credential expired more than the void grace and a day "
                          f"before the last checkpoint", block_id=block_id, credential=block.credential)
