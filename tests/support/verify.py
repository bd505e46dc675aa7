"""Verifying a seal the way a third party would: only ``cryptography`` and ``rfc8785``, and the JWK."""
from __future__ import annotations

import base64
import hashlib

import rfc8785
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify_independently(invoice: dict, jwk: dict) -> None:
    assert hashlib.sha256(rfc8785.dumps(invoice["lines"])).hexdigest() == invoice["seal"]["payload"]["lines_hash"]
    verify_seal_independently(invoice["seal"], jwk)


def verify_seal_independently(seal: dict, jwk: dict) -> None:
    """Any seal (invoice or checkpoint): hash of the JCS bytes, then ES256 over those bytes."""
    canonical = rfc8785.dumps(seal["payload"])
    assert hashlib.sha256(canonical).hexdigest() == seal["hash"]
    x = int.from_bytes(b64url(jwk["x"]), "big")
    y = int.from_bytes(b64url(jwk["y"]), "big")
    public = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    raw = b64url(seal["signature"])
    assert len(raw) == 64
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public.verify(der, canonical, ec.ECDSA(hashes.SHA256()))  # raises InvalidSignature if forged


def check_chain(invoices: list[dict]) -> None:
    """Counters exactly 1..n, every prev_hash the previous seal's hash, every fiscal number unique."""
    ordered = sorted(invoices, key=lambda i: i["counter"])
    assert [i["counter"] for i in ordered] == list(range(1, len(ordered) + 1))
    prev = "0" * 64
    for inv in ordered:
        assert inv["seal"]["payload"]["prev_hash"] == prev, inv["fiscal_number"]
        prev = inv["seal"]["hash"]
    assert len({i["fiscal_number"] for i in ordered}) == len(ordered)
