"""The checks of one returned invoice (docs/offline.md, "Returning invoices"): what can be decided without
the block's state (``prepare``: the device's signature, the request recomputed, done before the locks) and
the rules a placed invoice must meet (``rule_failure``). The merge (``batch_service``) places invoices in
their block's chain between the two.

Who answers for a failure decides its outcome. An invoice the device's key signed at a number of its block
is the device's act: if it breaks a rule it is **refused** (the number is used; a sealed record says why).
A seal that does not verify with the credential's key is nobody's act that we can prove, so it can use no
number: the invoice is **held** (nothing recorded), as is anything the block's chain cannot place yet.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ValidationError as PydanticValidationError

from stalela.errors import StalelaError
from stalela.fiscal.core.disclosure import check_commitment
from stalela.fiscal.core.seal import ALGORITHM, b64url_decode, canonical_bytes, public_key_from_jwk, raw_signature_to_der
from stalela.fiscal.invoices import offline_merge
from stalela.fiscal.invoices.schemas import InvoiceCreate
from stalela.kit.clock import rfc3339

# Every per-invoice code, by the check that gives it (the API's documentation lists them).
ITEM_CODES = {
    # held: nothing recorded, the number is not used
    "seal": "offline_seal_malformed",
    "signature": "offline_signature_invalid",
    "credential": "offline_credential_mismatch",
    "outside": "offline_number_outside_block",
    "gap": "offline_number_gap",
    "chain": "offline_chain_broken",
    # refused: the number is used, an offline_refusal record says why
    "request": "offline_request_invalid",
    "rule": "offline_rule_violation",
    "totals": "offline_totals_mismatch",
    "payload": "offline_payload_mismatch",
    "buyer": "offline_buyer_mismatch",
    "time": "offline_time_invalid",
    "credential_time": "offline_time_outside_credential",
    "block_time": "offline_time_outside_block",
    "revoked": "offline_credential_revoked",
    "type": "offline_type_not_allowed",
    "tax_group": "offline_tax_group_not_allowed",
    "cap": "offline_cap_exceeded",
    "invoice_id": "offline_invoice_id_invalid",
    "invoice_id_taken": "offline_invoice_id_taken",
    "reference": "offline_reference_taken",
}
_HEX64 = re.compile(r"[0-9a-f]{64}")
_INVOICE_ID = re.compile(r"inv_[0-9a-hjkmnp-tv-z]{26}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@dataclass
class Failure:
    code: str
    detail: str


@dataclass
class Prepared:
    """One returned invoice, checked as far as it can be before the block's chain is read."""
    index: int
    seal: dict[str, Any]
    salt: str | None
    held: Failure | None = None  # not the device's act for this block: never placed
    counter: int | None = None
    prev_hash: str | None = None
    hash: str | None = None
    request: InvoiceCreate | None = None
    recomputed: offline_merge.Recomputed | None = None
    refusal: Failure | None = None  # a rule already broken (the request, the engine, the payload)
    issued: datetime | None = None
    signed: bytes | None = None  # the payload's RFC 8785 bytes, as verified (the invoice row stores them)

    @property
    def payload(self) -> dict[str, Any]:
        return self.seal["payload"]


def prepare(index: int, item: Any, numbering: offline_merge.Numbering, device_jwk: dict[str, Any],
            block: dict[str, Any]) -> Prepared:
    """The device's signature, its seal's place (credential, block, number, link), then the request
    recomputed and compared with what was signed. CPU only: runs before any lock."""
    seal = item.seal
    p = Prepared(index, seal, item.buyer_salt)
    payload = seal.get("payload")
    if not isinstance(payload, dict) or not isinstance(payload.get("counter"), int) \
            or isinstance(payload.get("counter"), bool) or not isinstance(payload.get("prev_hash"), str) \
            or not _HEX64.fullmatch(payload["prev_hash"]):
        p.held = Failure(ITEM_CODES["seal"], "the seal's payload needs an integer counter and a prev_hash")
        return p
    reason = _device_signature(p, device_jwk)
    if reason is not None:
        p.held = Failure(ITEM_CODES["signature"], f"the device signature does not verify: {reason}")
        return p
    if payload.get("offline") != numbering.offline:
        p.held = Failure(ITEM_CODES["credential"], "sealed under another credential, block or device: upload it "
                                                    "with its own credential")
        return p
    p.counter, p.prev_hash, p.hash = payload["counter"], payload["prev_hash"], seal["hash"]
    if not block["first"] <= p.counter <= block["last"]:
        p.held = Failure(ITEM_CODES["outside"], f"number {p.counter} is outside the block "
                                                f"{block['first']}..{block['last']}")
        return p
    p.issued = _time(payload.get("issued_at"))
    try:
        p.request = InvoiceCreate.model_validate(item.request)
    except PydanticValidationError as exc:
        p.refusal = Failure(ITEM_CODES["request"], f"the request is not a valid invoice: {exc.errors()[0]['msg']}")
        return p
    try:
        p.recomputed = offline_merge.recompute(p.request, numbering, payload)
    except StalelaError as exc:
        p.refusal = Failure(ITEM_CODES["rule"], f"{exc.code}: {exc.detail}")
        return p
    p.refusal = _compare(p)
    return p


_KEYS: dict[str, ec.EllipticCurvePublicKey] = {}  # device keys by thumbprint (a batch checks one key 1,000 times)


def _device_signature(p: Prepared, jwk: dict[str, Any]) -> str | None:
    """``core.seal.verify_seal``'s checks, in its order, with the device key parsed once and the verified
    bytes kept (a merge would otherwise canonicalize each payload twice more). None when it verifies."""
    seal, payload = p.seal, p.seal["payload"]
    for name in ("hash", "signature", "key_id", "algorithm"):
        if not isinstance(seal.get(name), str):
            return f"{name} is missing or not a string"
    if seal["algorithm"] != ALGORITHM:
        return f"unsupported algorithm {seal['algorithm']!r}"
    if seal["key_id"] != jwk["kid"] or payload.get("key_id", seal["key_id"]) != seal["key_id"]:
        return "key_id is not the credential's cnf key"
    try:
        data = canonical_bytes(payload)
    except ValueError as exc:
        return f"payload cannot be canonicalized: {exc}"
    if hashlib.sha256(data).hexdigest() != seal["hash"]:
        return "hash does not match the payload"
    key = _KEYS.get(jwk["kid"])
    if key is None:
        key = _KEYS[jwk["kid"]] = public_key_from_jwk(jwk)
        if len(_KEYS) > 1024:
            _KEYS.pop(next(iter(_KEYS)))
    try:
        key.verify(raw_signature_to_der(b64url_decode(seal["signature"])), data, ec.ECDSA(hashes.SHA256()))
    except (ValueError, InvalidSignature):
        return "signature does not verify"
    p.signed = data
    return None


def _time(value: Any) -> datetime | None:
    """The device's time, if written exactly as seals write times (kit.clock.rfc3339: the pattern fixes the
    form, so parsing it back is the whole check; fromisoformat is ten times strptime's speed)."""
    if not isinstance(value, str) or not _TIME.fullmatch(value):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:  # 2026-02-30 and the like
        return None


def _compare(p: Prepared) -> Failure | None:
    assert p.recomputed is not None
    expected, signed = p.recomputed.payload, p.payload
    differing = offline_merge.differences(expected, signed)
    if differing and set(differing) <= {"totals", "total"}:
        return Failure(ITEM_CODES["totals"], f"the device's totals differ from the engine's: signed "
                                             f"{signed.get('total')}, computed {expected['total']}")
    if differing:
        return Failure(ITEM_CODES["payload"], "the signed payload differs from the request's in: "
                                              + ", ".join(differing))
    if p.recomputed.buyer is not None and not check_commitment(signed.get("buyer_commitment"), p.salt,
                                                               p.recomputed.buyer):
        return Failure(ITEM_CODES["buyer"], "buyer_salt and the buyer do not open the signed buyer_commitment")
    return None


@dataclass(frozen=True)
class Limits:
    """What a placed invoice's time and amounts must respect (the credential, its block, the merge's clock)."""
    not_before: datetime
    expires: datetime
    allocated: datetime
    now: datetime
    skew: timedelta
    revoked_at: datetime | None
    invoice_types: frozenset[str]
    tax_groups: frozenset[str]
    max_total: Decimal


def limits(claims: dict[str, Any], allocated: datetime, now: datetime, skew: timedelta,
           revoked_at: datetime | None) -> Limits:
    caps = claims.get("caps") or {}
    try:
        max_total = Decimal(str(caps.get("max_invoice_total")))
    except InvalidOperation:
        max_total = Decimal(0)
    # Seals carry milliseconds: an invoice sealed in the allocation's own millisecond is inside.
    allocated = allocated.replace(microsecond=allocated.microsecond // 1000 * 1000)
    return Limits(datetime.fromtimestamp(claims["nbf"], timezone.utc), datetime.fromtimestamp(claims["exp"], timezone.utc),
                  allocated, now, skew, revoked_at, frozenset(caps.get("invoice_types") or ()),
                  frozenset(caps.get("tax_groups") or ()), max_total)


def rule_failure(p: Prepared, lim: Limits) -> Failure | None:
    """The first rule a placed invoice breaks, in the documented order, or None."""
    if p.refusal is not None:
        return p.refusal
    if p.issued is None:
        return Failure(ITEM_CODES["time"], "issued_at is not an RFC 3339 UTC time with milliseconds")
    if not lim.not_before <= p.issued <= lim.expires:
        return Failure(ITEM_CODES["credential_time"], f"issued_at {rfc3339(p.issued)} is outside the credential's "
                                                      f"validity {rfc3339(lim.not_before)}..{rfc3339(lim.expires)}")
    if not lim.allocated <= p.issued <= lim.now + lim.skew:
        return Failure(ITEM_CODES["block_time"], f"issued_at {rfc3339(p.issued)} is before the block was allocated "
                                                 f"({rfc3339(lim.allocated)}) or after its upload")
    # At or after: the verifier (verify_offline) draws the line at the same instant.
    if lim.revoked_at is not None and p.issued >= lim.revoked_at:
        return Failure(ITEM_CODES["revoked"], f"sealed at or after the credential was revoked ({rfc3339(lim.revoked_at)})")
    req, computed = p.request, p.recomputed
    assert req is not None and computed is not None
    if req.type not in lim.invoice_types:
        return Failure(ITEM_CODES["type"], f"the credential does not allow invoices of type {req.type}")
    groups = sorted({line.tax_group for line in req.lines if line.tax_group not in lim.tax_groups})
    if groups:
        return Failure(ITEM_CODES["tax_group"], f"the credential does not allow tax groups {', '.join(map(str, groups))}")
    if computed.computed.total > lim.max_total:
        return Failure(ITEM_CODES["cap"], f"the total {computed.computed.total} is above the credential's "
                                          f"max_invoice_total {lim.max_total}")
    if not _INVOICE_ID.fullmatch(str(p.payload.get("invoice_id"))):
        return Failure(ITEM_CODES["invoice_id"], "invoice_id is not an invoice id (inv_ and 26 base32 characters)")
    return None
