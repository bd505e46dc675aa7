"""Offline verification with nothing but the tenant's public keys (``client.keys.jwks()``).

No request is made here and nothing is copied from the server: the checks are the server's own pure core
(``stalela.fiscal.core``: the seal, the Merkle log, the delegated credential), the same code ``stalela
verify`` runs. What an invoice's check covers mirrors ``stalela.fiscal.ledger.verify``:
- the seal: hash of the RFC 8785 payload, ES256 signature, key binding;
- the document agrees with what was signed (a changed amount, line or buyer cannot hide outside the seal);
- an offline invoice (its payload has ``offline``): first its delegated credential (signed by the tenant's
  key, ES256 only, at most 7 days, valid at the invoice's claimed time), then the invoice's seal by the
  credential's ``cnf`` key, inside the credential's block, outlet and series.
Every function answers a ``Verification`` and never raises on hostile input.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping, Union

from stalela.fiscal.core import merkle
from stalela.fiscal.core.invoice import document_mismatch
from stalela.fiscal.core.offline import CredentialInvalid, device_public_jwk, verify_credential
from stalela.fiscal.core.seal import verify_seal

JWKS = Union[Mapping[str, Any], Iterable[Mapping[str, Any]], Callable[[str], Any]]


@dataclass(frozen=True)
class Verification:
    """``valid``; when not, ``code`` (stable: ``seal_invalid``, ``document_altered``, ``credential_expired``…)
    and ``reason`` (for people). Truthy when valid."""
    valid: bool
    code: str | None = None
    reason: str | None = None
    credential: dict[str, Any] | None = None  # an offline invoice's verified credential claims

    def __bool__(self) -> bool:
        return self.valid


def _fail(code: str, reason: str) -> Verification:
    return Verification(False, code, reason)


def key_lookup(jwks: JWKS) -> Callable[[str], dict[str, Any] | None]:
    """``jwks``: a JWKS document (``{"keys": [...]}``), a list of JWKs, ``{kid: jwk}``, or a function."""
    if callable(jwks):
        return jwks  # type: ignore[return-value]
    if isinstance(jwks, Mapping):
        if isinstance(jwks.get("keys"), list):
            keys = {k.get("kid"): dict(k) for k in jwks["keys"] if isinstance(k, Mapping)}
        elif "kid" in jwks and "kty" in jwks:
            keys = {jwks["kid"]: dict(jwks)}  # one JWK (GET /v1/keys/{id})
        else:
            keys = {kid: dict(k) for kid, k in jwks.items()}
    else:
        keys = {k.get("kid"): dict(k) for k in jwks if isinstance(k, Mapping)}
    return keys.get


def verify_invoice(invoice: Mapping[str, Any], jwks: JWKS, *, credential: str | None = None,
                   tenant_id: str | None = None) -> Verification:
    """Check a sealed invoice as ``GET /v1/invoices/{id}`` returns it.

    ``credential``: for an offline invoice, the compact JWS of the credential it was sealed under (the
    payload names it by ``offline.credential``; a device keeps it, the cloud returns it with the invoice).
    ``tenant_id``: when given, the seal must be that tenant's."""
    try:
        return _verify_invoice(invoice, key_lookup(jwks), credential, tenant_id)
    except Exception as exc:  # noqa: BLE001 - the contract is "never raise": hostile input is reported
        return _fail("unverifiable", f"{type(exc).__name__}: {exc}")


def _verify_invoice(inv: Mapping[str, Any], keys: Callable[[str], Any], credential: str | None,
                    tenant_id: str | None) -> Verification:
    seal = inv.get("seal")
    if not isinstance(seal, Mapping) or not isinstance(seal.get("payload"), Mapping):
        return _fail("seal_invalid", "the invoice carries no seal payload")
    seal = dict(seal)
    payload = seal["payload"]
    claims = None
    if payload.get("offline") is not None:
        credential = credential or _carried_credential(inv)
        if credential is None:
            return _fail("credential_missing", "an offline invoice is checked with its credential (pass credential=)")
        outcome = _offline_key(payload, seal, credential, keys)
        if isinstance(outcome, Verification):
            return outcome
        claims, jwk = outcome
    else:
        jwk = keys(str(seal.get("key_id")))
        if jwk is None:
            return _fail("key_unknown", f"no published key {seal.get('key_id')!r}")
    check = verify_seal(seal, jwk)
    if not check:
        return _fail("seal_invalid", check.reason or "invalid")
    if tenant_id is not None and payload.get("tenant_id") != tenant_id:
        return _fail("wrong_tenant", f"sealed for tenant {payload.get('tenant_id')}")
    altered = _document_altered(inv, payload)
    if altered is not None:
        return altered
    return Verification(True, credential=claims)


def _carried_credential(inv: Mapping[str, Any]) -> str | None:
    # Where the API may put the token beside the invoice; a device passes it explicitly instead.
    marker = inv.get("offline")
    for holder in (inv, marker if isinstance(marker, Mapping) else {}):
        for name in ("credential_jws", "credential_token", "credential"):
            value = holder.get(name)
            if isinstance(value, str) and value.count(".") == 2:
                return value
    return None


def _offline_key(payload: Mapping[str, Any], seal: Mapping[str, Any], token: str,
                 keys: Callable[[str], Any]) -> tuple[dict[str, Any], dict[str, Any]] | Verification:
    """The credential's claims and the device key that must have signed, or why not."""
    marker = payload["offline"]
    try:
        # The credential is checked at the invoice's claimed time: it must fall inside nbf..exp, which is
        # the merge's rule too; a credential that expired since then is still good evidence for an archive.
        at = datetime.fromisoformat(str(payload.get("issued_at")).replace("Z", "+00:00"))
        claims = verify_credential(token, keys, at)
    except CredentialInvalid as exc:
        return _fail(exc.code, str(exc))
    except ValueError as exc:
        return _fail("document_altered", f"issued_at is not a time: {exc}")
    if not isinstance(marker, Mapping):
        return _fail("offline_marker_invalid", "payload.offline is not an object")
    block = claims["block"]
    expected = {"credential": claims["jti"], "device_id": claims["sub"], "block_id": block.get("id", marker.get("block_id"))}
    for name, value in expected.items():
        if marker.get(name) != value:
            return _fail("offline_credential_mismatch", f"offline.{name} is not the credential's ({value})")
    for name, claim in (("tenant_id", "tenant_id"), ("outlet_id", "outlet"), ("series_id", "series")):
        if payload.get(name) != claims.get(claim):
            return _fail("offline_credential_mismatch", f"{name} is not the credential's {claim}")
    counter = payload.get("counter")
    if not isinstance(counter, int) or not block["first"] <= counter <= block["last"]:
        return _fail("offline_number_outside_block", f"counter {counter} is outside {block['first']}..{block['last']}")
    jwk = device_public_jwk(claims["cnf"]["jwk"])
    if seal.get("key_id") != jwk["kid"]:
        return _fail("offline_wrong_key", "the seal's key_id is not the credential's cnf key")
    return claims, jwk


def _document_altered(inv: Mapping[str, Any], payload: Mapping[str, Any]) -> Verification | None:
    mismatch = document_mismatch(inv, payload, present_only=True)
    return _fail(*mismatch) if mismatch is not None else None


def verify_sealed(document: Mapping[str, Any], jwks: JWKS) -> Verification:
    """The seal alone of any cloud-sealed object (a Z or X report, a ledger record): hash, signature, key."""
    try:
        seal = document.get("seal")
        if not isinstance(seal, Mapping):
            return _fail("seal_invalid", "no seal")
        jwk = key_lookup(jwks)(str(seal.get("key_id")))
        if jwk is None:
            return _fail("key_unknown", f"no published key {seal.get('key_id')!r}")
        check = verify_seal(dict(seal), jwk)
        return Verification(True) if check else _fail("seal_invalid", check.reason or "invalid")
    except Exception as exc:  # noqa: BLE001
        return _fail("unverifiable", f"{type(exc).__name__}: {exc}")


def verify_checkpoint(checkpoint: Mapping[str, Any], jwks: JWKS, *, tenant_id: str | None = None) -> Verification:
    """A signed tree head: its seal verifies and the visible ``tree_size``/``root_hash`` are the signed ones."""
    sealed = verify_sealed(checkpoint, jwks)
    if not sealed:
        return sealed if sealed.code == "key_unknown" else _fail("checkpoint_seal_invalid", sealed.reason or "")
    try:
        payload = checkpoint["seal"]["payload"]
        for name in ("tree_size", "root_hash"):
            if name in checkpoint and checkpoint[name] != payload.get(name):
                return _fail("checkpoint_mismatch", f"{name} differs from the signed value")
        if tenant_id is not None and payload.get("tenant_id") != tenant_id:
            return _fail("wrong_tenant", f"signed for tenant {payload.get('tenant_id')}")
        if not isinstance(payload.get("tree_size"), int) or not _is_hex(payload.get("root_hash")):
            return _fail("checkpoint_mismatch", "the signed payload lacks tree_size or root_hash")
        return Verification(True)
    except Exception as exc:  # noqa: BLE001
        return _fail("unverifiable", f"{type(exc).__name__}: {exc}")


def verify_inclusion(proof: Mapping[str, Any], seal_hash: str, checkpoint: Mapping[str, Any], jwks: JWKS, *,
                     tenant_id: str | None = None) -> Verification:
    """``seal_hash`` is in the log the signed ``checkpoint`` commits to (RFC 9162 audit path).

    The proof's own ``root_hash`` is never trusted: the root is the checkpoint's signed one."""
    cp = verify_checkpoint(checkpoint, jwks, tenant_id=tenant_id)
    if not cp:
        return cp
    try:
        signed = checkpoint["seal"]["payload"]
        if proof.get("tree_size") != signed["tree_size"]:
            return _fail("inclusion_proof_invalid",
                         f"the proof is for tree size {proof.get('tree_size')}, the checkpoint for {signed['tree_size']}")
        leaf = merkle.seal_leaf_hash(seal_hash)
        if "leaf_hash" in proof and proof["leaf_hash"] != leaf.hex():
            return _fail("inclusion_proof_invalid", "leaf_hash is not the seal hash's leaf")
        path = merkle.proof_from_hex(proof.get("audit_path") or [])
        if not merkle.verify_inclusion(leaf, proof.get("leaf_index", -1), signed["tree_size"], path,
                                       bytes.fromhex(signed["root_hash"])):
            return _fail("inclusion_proof_invalid", f"not in the log of size {signed['tree_size']}")
        return Verification(True)
    except Exception as exc:  # noqa: BLE001
        return _fail("inclusion_proof_invalid", f"{type(exc).__name__}: {exc}")


def verify_consistency(proof: Mapping[str, Any], first: Mapping[str, Any], second: Mapping[str, Any], jwks: JWKS,
                       *, tenant_id: str | None = None) -> Verification:
    """The log of the ``second`` checkpoint extends the ``first`` one's (nothing rewritten in between)."""
    for cp in (first, second):
        check = verify_checkpoint(cp, jwks, tenant_id=tenant_id)
        if not check:
            return check
    try:
        a, b = first["seal"]["payload"], second["seal"]["payload"]
        if (proof.get("first"), proof.get("second")) != (a["tree_size"], b["tree_size"]):
            return _fail("consistency_proof_invalid", "the proof is not between these two checkpoints' sizes")
        path = merkle.proof_from_hex(proof.get("consistency_path") or [])
        if not merkle.verify_consistency(a["tree_size"], b["tree_size"], bytes.fromhex(a["root_hash"]),
                                         bytes.fromhex(b["root_hash"]), path):
            return _fail("consistency_proof_invalid",
                         f"the log of size {b['tree_size']} is not an extension of size {a['tree_size']}")
        return Verification(True)
    except Exception as exc:  # noqa: BLE001
        return _fail("consistency_proof_invalid", f"{type(exc).__name__}: {exc}")


def _is_hex(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
