"""The offline side of ``stalela verify``: delegated credentials, number blocks, and every record that
accounts for a block's numbers (offline invoices, refusals, voids, un-voids), checked with the very rules
the merge applies (``core.offline.BlockChain``).

A third party can do all of it with the tenant's public keys alone: a credential is a JWS by a tenant key
(checked at an instant inside its own validity: an archive's credentials have all expired, which is no
fault, but one valid for more than 7 days is refused whoever signed it); an offline invoice is signed by
the device key the credential binds (``cnf.jwk``), so it verifies with that key and nothing else.

Memory: one small record per credential, and a ``BlockChain`` per block still open (a closed block is
forgotten, but for its id, unless it has voids a late invoice may yet reopen).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from stalela.fiscal.core import offline as core
from stalela.fiscal.core.seal import b64url_decode

Fail = Callable[..., None]


@dataclass
class Credential:
    jti: str
    jwk: dict[str, Any]  # the device key (cnf.jwk), kid = its thumbprint
    block: dict[str, Any]
    series: str
    series_first: int
    nbf: int
    exp: int


@dataclass
class Block:
    chain: core.BlockChain
    series_id: str
    credential: str
    device_key: str


def _unverified_claims(token: Any) -> dict[str, Any] | None:
    try:
        claims = json.loads(b64url_decode(token.split(".")[1]))
    except Exception:  # noqa: BLE001 - hostile input: reported by the real check below
        return None
    return claims if isinstance(claims, dict) else None


def _epoch(text: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class OfflineLedger:
    def __init__(self, tenant_id: str | None, issuer_key: Callable[[str], dict[str, Any] | None], fail: Fail) -> None:
        self.tenant_id = tenant_id
        self.issuer_key = issuer_key
        self.fail = fail
        self.credentials: dict[str, Credential] = {}
        self.blocks: dict[str, Block | None] = {}  # None: closed and forgotten
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
        self.credentials[jti] = Credential(jti, core.device_public_jwk(claims["cnf"]["jwk"]), claims["block"],
                                           claims["series"], int(claims.get("series_first", 1)), claims["nbf"],
                                           claims["exp"])

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
        self.blocks[block_id] = Block(core.BlockChain.open(block_id, first, last, seal_hash),
                                      payload.get("series_id"), jti, payload.get("device_key"))
        return cred.series_first if cred else 1

    def _chain_of(self, block_id: Any, where: dict[str, Any]) -> Block | None:
        if block_id not in self.blocks:
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
        block = self._chain_of(block_id, where)
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
            at = _epoch(payload.get("issued_at"))
            if at is None or not cred.nbf <= at < cred.exp:
                self.fail("offline_time_outside_credential",
                          f"issued_at {payload.get('issued_at')} is outside the credential's validity", **where)
        block = self._chain_of(offline.get("block_id"), where)
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

    def finish(self) -> None:
        for block_id, block in self.blocks.items():
            if block is not None and block.chain.window is not None:
                self.fail("offline_unvoid_unfilled", f"block {block_id}: numbers reopened by an un-void never "
                          f"came (next {block.chain.window['next']})")
