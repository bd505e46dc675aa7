from __future__ import annotations

import copy
import hashlib

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import given
from hypothesis import strategies as st

from stalela.fiscal.core.seal import (
    SealCheck,
    b64url_decode,
    b64url_encode,
    build_seal,
    canonical_bytes,
    public_jwk_from_public_key,
    public_key_from_jwk,
    seal_hash,
    verify_seal,
)

# A fixed test key (private scalar 0x1f2e3d4c...1718); never used outside tests.
TEST_KEY_PEM = b"""-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgHy49TFtqeYgBAgME
BQYHCAkKCwwNDg8QERITFBUWFxihRANCAASUW6+/5Ju//lwz1JzQg9p1zoBarx8q
gs+wEOCWgWNYKkD39pKjJQaeIswP4EwOaDIvRFnkUQbVQyXuI7jGa9GE
-----END PRIVATE KEY-----
"""
KEY_ID = "test-key-1"
EXAMPLE_PAYLOAD = {
    "tenant_id": "t_1",
    "outlet_id": "o_1",
    "counter": 1,
    "fiscal_number": "CD-0001",
    "type": "FV",
    "issued_at": "2024-05-01T10:00:00Z",
    "currency": "CDF",
    "total": "1160.00",
    "key_id": KEY_ID,
    "prev_hash": "0" * 64,
}
EXAMPLE_CANONICAL = (
    b'{"counter":1,"currency":"CDF","fiscal_number":"CD-0001","issued_at":"2024-05-01T10:00:00Z",'
    b'"key_id":"test-key-1","outlet_id":"o_1","prev_hash":"' + b"0" * 64 + b'",'
    b'"tenant_id":"t_1","total":"1160.00","type":"FV"}'
)
EXAMPLE_HASH = "5e569da2395b5659b8d26dafe38986be7c1a37fb25c0b650ce0925d462354896"
EXAMPLE_JWK = {
    "kty": "EC",
    "crv": "P-256",
    "x": "lFuvv-Sbv_5cM9Sc0IPadc6AWq8fKoLPsBDgloFjWCo",
    "y": "QPf2kqMlBp4izA_gTA5oMi9EWeRRBtVDJe4juMZr0YQ",
    "kid": KEY_ID,
    "alg": "ES256",
    "use": "sig",
}
# One signature made with TEST_KEY_PEM over EXAMPLE_CANONICAL: a vector for outside verifiers.
EXAMPLE_SIGNATURE = (
    "UFcPKeFL3eTfvLeImFs6_0t3GAfs2fy1Bm-PwfMPbAS5N5BKrntPJdww4nUDc0l1kqRwvMimS2nUeFA8fdrS_g"
)


def _test_key() -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(TEST_KEY_PEM, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _sign(key: ec.EllipticCurvePrivateKey, payload: dict) -> bytes:
    r, s = decode_dss_signature(key.sign(canonical_bytes(payload), ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


@pytest.fixture
def sealed() -> dict:
    return build_seal(EXAMPLE_PAYLOAD, _sign(_test_key(), EXAMPLE_PAYLOAD), KEY_ID)


# -- canonical form and encodings ------------------------------------------------------------------


def test_canonical_bytes_sort_keys_by_utf16_code_units() -> None:
    # RFC 8785 §3.2.3: U+1F600 (surrogates D83D DE00) sorts before U+FB33, unlike code point order.
    payload = {"\ufb33": 1, "\U0001f600": 2, "\u20ac": 3, "1": 4, "\r": 5, "\u00f6": 6}
    assert canonical_bytes(payload) == (
        '{"\\r":5,"1":4,"\u00f6":6,"\u20ac":3,"\U0001f600":2,"\ufb33":1}'.encode()
    )


def test_canonical_bytes_reject_what_jcs_cannot_represent() -> None:
    with pytest.raises(ValueError):
        canonical_bytes({"amount": float("nan")})
    with pytest.raises(ValueError):
        canonical_bytes({"counter": 2**60})


def test_b64url_is_unpadded_and_strict() -> None:
    data = bytes(range(256))
    text = b64url_encode(data)
    assert "=" not in text and "+" not in text and "/" not in text
    assert b64url_decode(text) == data
    for bad in ("AA==", "A", "a+b/", "AB", "ab cd", "é"):
        with pytest.raises(ValueError):
            b64url_decode(bad)


def test_jwk_round_trip() -> None:
    public = _test_key().public_key()
    jwk = public_jwk_from_public_key(public, KEY_ID)
    assert jwk == EXAMPLE_JWK
    assert public_key_from_jwk(jwk).public_numbers() == public.public_numbers()


def test_jwk_refuses_other_curves_and_points_off_the_curve() -> None:
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    with pytest.raises(ValueError):
        public_jwk_from_public_key(p384, "k")
    off_curve = dict(EXAMPLE_JWK, y=EXAMPLE_JWK["x"])
    with pytest.raises(ValueError):
        public_key_from_jwk(off_curve)


# -- the worked example --------------------------------------------------------------------------


def test_worked_example() -> None:
    assert canonical_bytes(EXAMPLE_PAYLOAD) == EXAMPLE_CANONICAL
    assert hashlib.sha256(EXAMPLE_CANONICAL).hexdigest() == EXAMPLE_HASH
    assert seal_hash(EXAMPLE_PAYLOAD) == EXAMPLE_HASH
    stored = {
        "payload": EXAMPLE_PAYLOAD,
        "hash": EXAMPLE_HASH,
        "signature": EXAMPLE_SIGNATURE,
        "key_id": KEY_ID,
        "algorithm": "ES256",
    }
    assert verify_seal(stored, EXAMPLE_JWK) == SealCheck(True, None)
    # ECDSA is randomised: a fresh signature differs but must verify the same way.
    fresh = build_seal(EXAMPLE_PAYLOAD, _sign(_test_key(), EXAMPLE_PAYLOAD), KEY_ID)
    assert fresh["hash"] == EXAMPLE_HASH and fresh["algorithm"] == "ES256"
    assert fresh["signature"] != EXAMPLE_SIGNATURE
    assert verify_seal(fresh, EXAMPLE_JWK).valid


def test_build_seal_refuses_a_signature_of_the_wrong_size() -> None:
    with pytest.raises(ValueError):
        build_seal(EXAMPLE_PAYLOAD, b"\x01" * 63, KEY_ID)


# -- tampering -----------------------------------------------------------------------------------


def _flip_last_signature_char(seal: dict) -> None:
    raw = bytearray(b64url_decode(seal["signature"]))
    raw[-1] ^= 0x01
    seal["signature"] = b64url_encode(bytes(raw))


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda s: s["payload"].__setitem__("total", "1.00"), "hash does not match"),
        (lambda s: s["payload"].pop("prev_hash"), "hash does not match"),
        (lambda s: s.__setitem__("hash", "f" * 64), "hash does not match"),
        (lambda s: s.__setitem__("hash", EXAMPLE_HASH.upper()), "lowercase hex"),
        (_flip_last_signature_char, "signature does not verify"),
        (lambda s: s.__setitem__("key_id", "other-key"), "key_id does not match"),
        (lambda s: s.__setitem__("algorithm", "ES384"), "unsupported algorithm"),
        (lambda s: s.__setitem__("algorithm", "none"), "unsupported algorithm"),
    ],
)
def test_tampering_is_detected(sealed: dict, tamper, reason: str) -> None:
    tampered = copy.deepcopy(sealed)
    tamper(tampered)
    check = verify_seal(tampered, EXAMPLE_JWK)
    assert not check.valid
    assert reason in (check.reason or "")


def test_payload_and_hash_changed_together_fail_on_the_signature(sealed: dict) -> None:
    tampered = copy.deepcopy(sealed)
    tampered["payload"]["total"] = "1.00"
    tampered["hash"] = seal_hash(tampered["payload"])
    assert verify_seal(tampered, EXAMPLE_JWK).reason == "signature does not verify"


def test_another_key_published_under_the_same_kid_does_not_verify(sealed: dict) -> None:
    other_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    impostor = public_jwk_from_public_key(other_key, KEY_ID)
    assert verify_seal(sealed, impostor).reason == "signature does not verify"


def test_payload_naming_another_key_is_rejected() -> None:
    payload = dict(EXAMPLE_PAYLOAD, key_id="other-key")
    seal = build_seal(payload, _sign(_test_key(), payload), KEY_ID)
    assert "payload key_id" in (verify_seal(seal, EXAMPLE_JWK).reason or "")


# -- hostile input never raises -----------------------------------------------------------------


@pytest.mark.parametrize(
    "signature",
    [
        "",
        "!!!",
        "AA==",
        EXAMPLE_SIGNATURE + "=",
        EXAMPLE_SIGNATURE[:-2],
        EXAMPLE_SIGNATURE + "AAAA",
        b64url_encode(b"\x00" * 64),  # r = s = 0
        b64url_encode(b"\xff" * 64),  # r, s above the group order
        None,
        123,
        ["x"],
    ],
)
def test_malformed_signatures_are_reported_not_raised(sealed: dict, signature) -> None:
    check = verify_seal(dict(sealed, signature=signature), EXAMPLE_JWK)
    assert check.valid is False and check.reason


_UNCANONICALIZABLE = {
    "payload": {"counter": 2**60},
    "hash": "0" * 64,
    "signature": EXAMPLE_SIGNATURE,
    "key_id": KEY_ID,
    "algorithm": "ES256",
}


@pytest.mark.parametrize("seal", [None, [], "seal", {}, {"payload": []}, _UNCANONICALIZABLE])
def test_malformed_seals_are_reported_not_raised(seal) -> None:
    check = verify_seal(seal, EXAMPLE_JWK)
    assert check.valid is False and check.reason


@pytest.mark.parametrize(
    "jwk",
    [
        None,
        {},
        {"kid": KEY_ID},
        dict(EXAMPLE_JWK, kty="RSA"),
        dict(EXAMPLE_JWK, crv="P-384"),
        dict(EXAMPLE_JWK, x="not base64!"),
        dict(EXAMPLE_JWK, x=b64url_encode(b"\x01" * 31)),
        dict(EXAMPLE_JWK, y=EXAMPLE_JWK["x"]),
        dict(EXAMPLE_JWK, alg="RS256"),
        dict(EXAMPLE_JWK, use="enc"),
        dict(EXAMPLE_JWK, x=5),
    ],
)
def test_malformed_keys_are_reported_not_raised(sealed: dict, jwk) -> None:
    check = verify_seal(sealed, jwk)
    assert check.valid is False and check.reason


@given(signature=st.text(max_size=120), hash_=st.text(max_size=80))
def test_arbitrary_strings_never_raise(signature: str, hash_: str) -> None:
    seal = {
        "payload": EXAMPLE_PAYLOAD,
        "hash": hash_,
        "signature": signature,
        "key_id": KEY_ID,
        "algorithm": "ES256",
    }
    assert verify_seal(seal, EXAMPLE_JWK).valid is False
