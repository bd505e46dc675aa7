"""Fork proofs: two different invoices a device signed at one number of its block, countersigned by the
cloud. Anyone holding the tenant's public keys can check one (``check``): the cloud's signature over the
proof, the credential (cloud-signed) that binds the device key, then both device signatures with that key.
Two valid device signatures at one number cannot be explained by a replay or a transmission error: the
device (or a copy of its key) used the number twice, so the credential is revoked (docs/offline.md). The
same holds for an invoice at a number the device signed it gave back unused (``conflict: "returned"``: the
first statement is its ``block_return``)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

from stalela.fiscal.core import offline as core
from stalela.fiscal.core.seal import b64url_decode, verify_seal

FORK_VERSION = 1


RETURNED = "returned"  # ``conflict`` of a proof whose first statement is the device's block_return


def payload(*, tenant_id: str, credential: str, claims: dict[str, Any], counter: int, first: dict[str, Any],
            second: dict[str, Any], key_id: str, at: str, conflict: str | None = None) -> dict[str, Any]:
    """``first``: the seal the cloud had (merged or refused, or earlier in the same batch); ``second``: the other.
    ``conflict`` ``"returned"``: ``first`` is the device's signed ``block_return`` statement giving back
    ``counter`` unused, ``second`` an invoice it signed at that number all the same."""
    body = {"v": FORK_VERSION, "kind": core.FORK, "tenant_id": tenant_id, "credential": credential,
            "jti": claims["jti"], "block_id": claims["block"]["id"], "device_id": claims["sub"],
            "device_key": claims["cnf"]["jwk"]["kid"], "counter": counter, "first": first, "second": second,
            "key_id": key_id, "at": at}
    if conflict is not None:
        body["conflict"] = conflict
    return body


def check(proof: dict[str, Any], issuer_jwks: Callable[[str], dict[str, Any] | None]) -> str | None:
    """None when ``proof`` (``{"payload", "hash", "signature", "key_id", "algorithm"}``) proves a fork, else why not."""
    jwk = issuer_jwks(str(proof.get("key_id")))
    if jwk is None:
        return "signed by a key this cloud does not publish"
    outcome = verify_seal(proof, jwk)
    if not outcome.valid:
        return f"the cloud's signature: {outcome.reason}"
    body = proof["payload"]
    if body.get("kind") != core.FORK:
        return "not a fork proof"
    try:
        # Expiry is no excuse for a fork: check the credential at a time inside its validity.
        claims = core.verify_credential(body["credential"], issuer_jwks,
                                        datetime.fromtimestamp(_inside(body["credential"]), timezone.utc))
    except (core.CredentialInvalid, KeyError, ValueError) as exc:
        return f"the credential: {exc}"
    device = claims["cnf"]["jwk"]
    seals = (body.get("first"), body.get("second"))
    for seal in seals:
        outcome = verify_seal(seal, device)
        if not outcome.valid:
            return f"a device seal: {outcome.reason}"
    returned = body.get("conflict") == RETURNED
    if returned and not _returns(seals[0]["payload"], claims, body.get("counter")):
        return "the return statement does not give back the proof's number of this credential's block"
    for seal in seals[1:] if returned else seals:
        if (seal["payload"].get("offline") or {}).get("credential") != claims["jti"] \
                or seal["payload"].get("counter") != body.get("counter"):
            return "a device seal is not at the proof's credential and number"
    if seals[0]["hash"] == seals[1]["hash"]:
        return "the two seals are the same invoice"
    return None


def _returns(statement: dict[str, Any], claims: dict[str, Any], counter: Any) -> bool:
    """The device's ``block_return`` statement gives back ``counter`` of the credential's block."""
    first, last = statement.get("first"), statement.get("last")
    return statement.get("kind") == core.RETURN and statement.get("credential") == claims["jti"] \
        and statement.get("block_id") == claims["block"]["id"] and isinstance(counter, int) \
        and isinstance(first, int) and isinstance(last, int) and first <= counter <= last


def _inside(token: str) -> int:
    """The credential's nbf (read unverified; verify_credential then checks everything)."""
    claims = core.canonical_loads(b64url_decode(token.split(".")[1]))
    return int(claims["nbf"])
