"""Offline sealing: what a device signs, what the cloud records about blocks, and the block chain rules.

Pure, and shared: the cloud (merge, ``stalela verify``) and the SDK's offline sealer import this very
module, so a device and the cloud can never disagree on what an offline invoice's payload is
(docs/offline.md is the prose version).

Four kinds of records take part, all in the tenant's Merkle log:
- ``number_block`` (cloud-sealed): numbers ``first..last`` of a series handed to a device. It takes
  that range's place in the series chain: its ``prev_hash`` is the series head, and the next online
  invoice chains to its hash.
- an **offline invoice** (device-sealed, seal v2 plus an ``offline`` object): it chains inside its
  block, the first one to the block record's hash, each next one to the previous one's.
- ``offline_refusal`` (cloud-sealed): the number was used by the device but the invoice was refused
  (a rule, a cap, a time outside the credential...); the chain continues through the device's hash.
- ``numbers_voided`` / ``numbers_unvoided`` (cloud-sealed): numbers that never came back are voided
  (never a gap); a late invoice inside a voided range needs an un-void first.

``BlockChain`` is the one implementation of the rules that join them: the merge uses it to accept or
refuse, the verifier to check. Its state is JSON (``as_json``), stored in the block's row.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from joserfc import jws  # a well-kept JOSE library (from Authlib's author); pure, no I/O
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from stalela.fiscal.core.disclosure import is_natural_person
from stalela.fiscal.core.seal import b64url_decode, b64url_encode, canonical_bytes, public_key_from_jwk
from stalela.kit import canonical

ZERO_HASH = "0" * 64
RECORD_VERSION = 1
# The JWS header type of a delegated credential (RFC 9345 in spirit, a JWT with the SD-JWT VC claims).
CREDENTIAL_TYP = "dc+jwt"
CREDENTIAL_VCT = "https://stalela.dev/credentials/offline-sealing/v1"
# The only algorithm a credential or a device signature may use: pinned, never read from the token.
ALGORITHMS = ("ES256",)
MAX_LIFETIME = timedelta(days=7)  # RFC 9345's default ceiling; the verifier refuses longer ones too
REGISTRATION_PURPOSE = "stalela-device-registration"

# Record kinds (``kind`` of a cloud-sealed ledger event's payload).
BLOCK = "number_block"
REFUSAL = "offline_refusal"
VOID = "numbers_voided"
UNVOID = "numbers_unvoided"
RETURN = "block_return"  # device-signed: "I will not use first..last"
FORK = "fork_proof"
KINDS = (BLOCK, REFUSAL, VOID, UNVOID)
# A void's ``reason``: nobody returned the numbers by the credential's exp + grace, or the device gave them
# back with a signed ``block_return`` statement (which it cannot take back: a returned void is never reopened).
EXPIRED, RETURNED = "expired", "returned"
VOID_REASONS = (EXPIRED, RETURNED)


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint (SHA-256, base64url) of an EC public key: the device key's stable name."""
    required = {"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"], "y": jwk["y"]}
    return b64url_encode(hashlib.sha256(canonical.dumps(required)).digest())


def device_public_jwk(jwk: dict[str, Any]) -> dict[str, str]:
    """The device key as the credential binds it (``cnf.jwk``): P-256, public members only, kid = thumbprint.

    Raises ``ValueError`` for anything else (a private member, another curve, a bad point)."""
    if not isinstance(jwk, dict):
        raise ValueError("the key is not a JWK object")
    if "d" in jwk:
        raise ValueError("the JWK holds a private key; send the public key only")
    public_key_from_jwk({k: v for k, v in jwk.items() if k in ("kty", "crv", "x", "y")})
    clean = {"kty": "EC", "crv": "P-256", "x": jwk["x"], "y": jwk["y"]}
    return {**clean, "kid": jwk_thumbprint(clean), "alg": "ES256", "use": "sig"}


def registration_message(nonce: str, tenant_id: str, thumbprint: str) -> bytes:
    """What a device signs to prove it holds the key it registers (single-use nonce, 60 s)."""
    return canonical_bytes({"purpose": REGISTRATION_PURPOSE, "nonce": nonce, "tenant_id": tenant_id,
                            "key": thumbprint})


def invoice_payload(*, version: int, jurisdiction: str, tenant_id: str, seller_tax_id: str | None, outlet_id: str,
                    series_id: str, counter: int, fiscal_number: str, invoice_id: str, type: str,
                    price_mode: str, issued_at: str, currency: str, totals: dict[str, Any], lines_hash: str,
                    line_count: int, buyer_tax_id: str | None, buyer_commitment: str | None, nature: str | None,
                    original: str | None, exchange: dict[str, Any] | None, key_id: str, prev_hash: str,
                    series_first: int = 1, extra: tuple[str, dict[str, Any]] | None = None,
                    offline: dict[str, Any] | None = None) -> dict[str, Any]:
    """The signed payload of an invoice (seal v2, docs/seal-format.md), online or offline: one builder."""
    payload = {
        "v": version,
        "jurisdiction": jurisdiction,
        "tenant_id": tenant_id,
        "seller_tax_id": seller_tax_id,
        "outlet_id": outlet_id,
        "series_id": series_id,
        "counter": counter,
        "fiscal_number": fiscal_number,
        "invoice_id": invoice_id,
        "type": type,
        "price_mode": price_mode,
        "issued_at": issued_at,
        "currency": currency,
        "totals": totals,
        "total": totals["total"],
        "lines_hash": lines_hash,
        "line_count": line_count,
        "buyer_tax_id": buyer_tax_id,
        "buyer_commitment": buyer_commitment,
        "nature": nature,
        "original": original,
        "exchange": exchange,
        "key_id": key_id,
        "prev_hash": prev_hash,
    }
    if series_first != 1:
        payload["series_first"] = series_first
    if extra is not None:
        payload[extra[0]] = extra[1]
    if offline is not None:
        # Offline only: which credential (and so which device key and block) signed it.
        payload["offline"] = offline
    return payload


CONTACTS = ("email", "phone", "address", "reference")


def buyer_document(computed_buyer: dict[str, Any] | None, given: dict[str, Any] | None) -> dict[str, Any] | None:
    """The sealed document's ``buyer``: the jurisdiction's buyer object (``ComputedInvoice.buyer_as_json``)
    plus the contacts given (only those, only when not empty). Online and offline alike."""
    contacts = {k: given[k] for k in CONTACTS if given and given.get(k)}
    if computed_buyer is None:
        return contacts or None
    return {**computed_buyer, **contacts}


def clear_tax_id(buyer: dict[str, Any] | None) -> str | None:
    """Seal v2 signs in clear only a legal person's tax id (a natural person's is committed to, salted)."""
    if buyer is None or is_natural_person(buyer) or buyer.get("doc_type") == "CF":
        return None
    return buyer.get("tax_id") or buyer.get("doc_number")


def offline_marker(credential_jti: str, block_id: str, device_id: str) -> dict[str, str]:
    return {"credential": credential_jti, "block_id": block_id, "device_id": device_id}


def record_payload(kind: str, *, tenant_id: str, outlet_id: str, series_id: str, block_id: str, key_id: str,
                   prev_hash: str, at: str, **fields: Any) -> dict[str, Any]:
    """A cloud-sealed ledger event's payload (``kind`` in KINDS, fields per docs/offline.md)."""
    if kind not in KINDS:
        raise ValueError(f"unknown record kind {kind!r}")
    return {"v": RECORD_VERSION, "kind": kind, "tenant_id": tenant_id, "outlet_id": outlet_id,
            "series_id": series_id, "block_id": block_id, "key_id": key_id, "prev_hash": prev_hash,
            "at": at, **fields}


def return_payload(*, tenant_id: str, block_id: str, credential: str, first: int, last: int, prev_hash: str,
                   at: str) -> dict[str, Any]:
    """What a device signs (with its ``cnf`` key, ``key_id`` = its thumbprint) to give back ``first..last``
    of its block unused: ``first`` is the block's next number and ``prev_hash`` its chain's head, so the
    statement fits only where the device really stopped. The cloud answers with a ``numbers_voided``
    record (reason ``returned``) whose ``return`` is this statement's hash."""
    return {"kind": RETURN, "tenant_id": tenant_id, "block_id": block_id, "credential": credential,
            "first": first, "last": last, "prev_hash": prev_hash, "at": at}


def signed_hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(payload)).hexdigest()


# --- delegated credentials ------------------------------------------------------------------------------


def credential_signing_input(header: dict[str, Any], claims: dict[str, Any]) -> bytes:
    """JWS signing input (RFC 7515 §5.1) with RFC 8785 JSON, so the token is reproducible."""
    return (b64url_encode(canonical.dumps(header)) + "." + b64url_encode(canonical.dumps(claims))).encode("ascii")


def compact_jws(signing_input: bytes, signature: bytes) -> str:
    return signing_input.decode("ascii") + "." + b64url_encode(signature)


class CredentialInvalid(ValueError):
    """``code`` is the stable problem code (``credential_*``) the API answers with."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def verify_credential(token: str, issuer_jwks: Callable[[str], dict[str, Any] | None], now: datetime,
                      max_lifetime: timedelta = MAX_LIFETIME) -> dict[str, Any]:
    """The claims of a delegated credential, or ``CredentialInvalid``.

    The JWS is checked with joserfc and a pinned algorithm list (``alg: none``, HS256 and the like never
    reach a key); then ``typ``, the lifetime ceiling (a credential longer than ``max_lifetime`` is refused
    even though the issuer signed it), nbf/exp against ``now``, and the ``cnf`` key's shape.
    ``issuer_jwks(kid)``: the cloud's public JWK by id (None when unknown)."""
    if not isinstance(token, str) or token.count(".") != 2:
        raise CredentialInvalid("credential_malformed", "a credential is a compact JWS")
    try:
        header = canonical_loads(b64url_decode(token.split(".", 1)[0]))
    except ValueError as exc:
        raise CredentialInvalid("credential_malformed", f"unreadable header: {exc}") from exc
    if not isinstance(header, dict) or header.get("alg") not in ALGORITHMS:
        raise CredentialInvalid("credential_algorithm", f"algorithm {header.get('alg') if isinstance(header, dict) else None!r} is not accepted (ES256 only)")
    if header.get("typ") != CREDENTIAL_TYP:
        raise CredentialInvalid("credential_type", f"typ must be {CREDENTIAL_TYP}")
    jwk = issuer_jwks(str(header.get("kid")))
    if jwk is None:
        raise CredentialInvalid("credential_issuer_unknown", "signed by a key this cloud does not publish")
    try:
        key = ECKey.import_key({k: jwk[k] for k in ("kty", "crv", "x", "y")})
        obj = jws.deserialize_compact(token, key, algorithms=list(ALGORITHMS))
    except (JoseError, ValueError, KeyError) as exc:
        raise CredentialInvalid("credential_signature", f"the credential's signature does not verify: {exc}") from exc
    try:
        claims = canonical_loads(obj.payload)
    except ValueError as exc:
        raise CredentialInvalid("credential_malformed", f"unreadable claims: {exc}") from exc
    check_claims(claims, now, max_lifetime)
    return claims


def check_claims(claims: Any, now: datetime, max_lifetime: timedelta = MAX_LIFETIME) -> None:
    if not isinstance(claims, dict):
        raise CredentialInvalid("credential_malformed", "claims are not an object")
    for name in ("iss", "sub", "jti", "nbf", "exp", "tenant_id", "outlet", "series", "block", "cnf"):
        if name not in claims:
            raise CredentialInvalid("credential_malformed", f"claim {name} is missing")
    nbf, exp = claims["nbf"], claims["exp"]
    if not isinstance(nbf, int) or not isinstance(exp, int) or exp <= nbf:
        raise CredentialInvalid("credential_malformed", "nbf and exp are integers with exp > nbf")
    if exp - nbf > max_lifetime.total_seconds():
        raise CredentialInvalid("credential_lifetime", f"valid for more than {max_lifetime.days} days")
    block = claims["block"]
    if not isinstance(block, dict) or not all(isinstance(block.get(k), int) for k in ("first", "last")) \
            or block["first"] < 1 or block["last"] < block["first"]:
        raise CredentialInvalid("credential_malformed", "block is {first, last} with 1 <= first <= last")
    try:
        device_public_jwk((claims["cnf"] or {}).get("jwk"))
    except (ValueError, AttributeError, KeyError) as exc:
        raise CredentialInvalid("credential_malformed", f"cnf.jwk is not a P-256 public key: {exc}") from exc
    if now.timestamp() < nbf:
        raise CredentialInvalid("credential_not_yet_valid", "the credential is not valid yet (nbf)")
    if now.timestamp() >= exp:
        raise CredentialInvalid("credential_expired", "the credential has expired (exp)")


def canonical_loads(data: bytes) -> Any:
    return json.loads(data)


# --- the block chain --------------------------------------------------------------------------------------


@dataclass
class Void:
    """A voided range and how much of it late invoices have reopened (un-voids start at its front)."""
    record_hash: str
    first: int
    last: int
    reopened_through: int  # first - 1 until an un-void reopens its front
    head: str  # the device chain's hash at reopened_through (the void's prev_hash at first)
    # Older stored states have no reason: only the scheduler voided then, so they read as expired.
    reason: str = EXPIRED


@dataclass
class BlockChain:
    """Where a block stands: every number in first..last is accounted for exactly once, in order, by an
    offline invoice, a refusal, or a void (and un-voids reopen a voided range's front for late invoices).

    ``next``/``head``: the main cursor (the next number the device's chain continues at, and the hash it
    must chain to). ``window``: an un-void's reopened range, being filled by late invoices."""
    block_id: str
    first: int
    last: int
    next: int
    head: str
    voids: list[Void] = field(default_factory=list)
    window: dict[str, Any] | None = None  # {"void": record_hash, "next", "last", "head"}

    @classmethod
    def open(cls, block_id: str, first: int, last: int, anchor: str) -> "BlockChain":
        return cls(block_id, first, last, first, anchor)

    @property
    def closed(self) -> bool:
        return self.next > self.last and self.window is None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "BlockChain":
        return cls(**{**data, "voids": [Void(**v) for v in data.get("voids", [])]})

    # Each step returns None when the record fits, else a stable reason code; it only moves on success.

    def place(self, counter: int, prev_hash: str) -> str | None:
        """Where an invoice (or a refusal, with the device's claimed prev_hash) at ``counter`` fits."""
        if not self.first <= counter <= self.last:
            return "offline_number_outside_block"
        void = self.voided(counter)
        if void is not None and void.reason == RETURNED:
            return "offline_number_returned"  # the device signed that it would not use it
        if self.window is not None:
            if counter != self.window["next"]:
                return "offline_number_gap"
            return None if prev_hash == self.window["head"] else "offline_chain_broken"
        if counter < self.next:
            return "offline_number_voided" if void is not None else "offline_number_used"
        if counter != self.next:
            return "offline_number_gap"
        return None if prev_hash == self.head else "offline_chain_broken"

    def advance(self, counter: int, device_hash: str) -> None:
        """After ``place`` said yes: the number is used (merged or refused) and the chain is at its hash."""
        if self.window is not None:
            self.window["next"], self.window["head"] = counter + 1, device_hash
            if counter == self.window["last"]:
                for v in self.voids:
                    if v.record_hash == self.window["void"]:
                        v.reopened_through, v.head = counter, device_hash
                self.window = None
            return
        self.next, self.head = counter + 1, device_hash

    def voided(self, counter: int) -> Void | None:
        for v in self.voids:
            if v.reopened_through < counter <= v.last:
                return v
        return None

    def void(self, first: int, last: int, prev_hash: str, record_hash: str, *, reason: str) -> str | None:
        """A void of ``first..last``: the whole unused tail from the main cursor, whatever the ``reason``
        (the scheduler voids the tail, a device returns all of it): with part of it, invoices after it and an
        un-void would let two records chain to one hash."""
        if self.window is not None:
            return "offline_window_open"
        if first != self.next or last != self.last or prev_hash != self.head:
            return "offline_void_misplaced"
        self.voids.append(Void(record_hash, first, last, first - 1, prev_hash, reason))
        self.next = last + 1
        return None

    def unvoid(self, void_hash: str, first: int, last: int, prev_hash: str) -> str | None:
        """Reopen ``first..last`` of a void for late invoices, which must follow at once, in order. Never a
        returned void: the device signed that it would not use those numbers."""
        if self.window is not None:
            return "offline_window_open"
        for v in self.voids:
            if v.record_hash == void_hash:
                if v.reason == RETURNED:
                    return "offline_number_returned"
                if first != v.reopened_through + 1 or not first <= last <= v.last or prev_hash != v.head:
                    return "offline_unvoid_misplaced"
                self.window = {"void": void_hash, "next": first, "last": last, "head": prev_hash}
                return None
        return "offline_unvoid_misplaced"


def unused_tail(chain: BlockChain) -> tuple[int, int] | None:
    """The numbers a void at expiry covers: from the main cursor to the block's end (None if used up)."""
    return (chain.next, chain.last) if chain.next <= chain.last and chain.window is None else None
