"""``core.offline.verify_credential`` against what an attacker can make: other algorithms, the tenant's own
key signing rules it must not (an 8-day credential), stale or early tokens, tampered claims, bad keys."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from stalela.fiscal.core import offline as core
from stalela.fiscal.core.seal import b64url_encode
from stalela.fiscal.signing import registry as keys
from stalela.tenancy.context import bind_tenant
from tests.offline.support import es256, issue_credential, public_jwk, register_device


async def sign_as_tenant(app, tenant_id: str, header: dict, claims: dict) -> str:
    """Sign with the tenant's real key through the key registry, as the issuer does."""
    async with app.state.db.transaction() as session:
        await bind_tenant(session, tenant_id)
        key = await keys.active_key(session, tenant_id)
        signing_input = core.credential_signing_input({"kid": key.id, **header}, claims)
        return core.compact_jws(signing_input, await keys.sign(app.state.settings, key, signing_input))


def parts(token: str) -> tuple[dict, dict, str]:
    h, c, s = token.split(".")
    pad = lambda t: t + "=" * (-len(t) % 4)  # noqa: E731
    return json.loads(base64.urlsafe_b64decode(pad(h))), json.loads(base64.urlsafe_b64decode(pad(c))), s


def unsigned(header: dict, claims: dict, signature: bytes = b"") -> str:
    return core.compact_jws(core.credential_signing_input(header, claims), signature)


@pytest.fixture
async def issued(app, client, new_tenant):
    tenant, headers = await new_tenant()
    outlet = (await client.post("/v1/outlets", json={"code": "SHOP", "name": "Shop"}, headers=headers)).json()
    device, device_key = await register_device(client, headers, tenant["id"], outlet["id"])
    cred = await issue_credential(client, headers, device["id"], block_size=10)
    jwks = {k["kid"]: k for k in (await client.get("/.well-known/jwks.json")).json()["keys"]}
    header, claims, _ = parts(cred["credential"])
    return {"app": app, "tenant": tenant, "token": cred["credential"], "jwks": jwks, "header": header,
            "claims": claims, "device_key": device_key, "now": datetime.fromtimestamp(claims["nbf"] + 60, timezone.utc)}


def refused(issued, token: str, now: datetime | None = None) -> str:
    with pytest.raises(core.CredentialInvalid) as caught:
        core.verify_credential(token, issued["jwks"].get, now or issued["now"])
    return caught.value.code


async def test_a_good_credential_verifies(issued):
    claims = core.verify_credential(issued["token"], issued["jwks"].get, issued["now"])
    assert claims == issued["claims"]
    assert issued["header"] == {"alg": "ES256", "typ": "dc+jwt", "kid": issued["header"]["kid"]}
    assert claims["exp"] - claims["nbf"] == 72 * 3600


async def test_alg_none_is_refused(issued):
    token = unsigned({**issued["header"], "alg": "none"}, issued["claims"])
    assert refused(issued, token) == "credential_algorithm"


async def test_hs256_keyed_with_the_public_key_is_refused(issued):
    """Algorithm confusion: an HMAC whose secret is the issuer's public key (which anyone has)."""
    jwk = issued["jwks"][issued["header"]["kid"]]
    public = ECKey.import_key({k: jwk[k] for k in ("kty", "crv", "x", "y")})
    pem = public.as_pem(private=False)
    for secret in (pem, json.dumps(jwk).encode(), jwk["x"].encode()):
        signing_input = core.credential_signing_input({**issued["header"], "alg": "HS256"}, issued["claims"])
        token = core.compact_jws(signing_input, hmac.new(secret, signing_input, hashlib.sha256).digest())
        assert refused(issued, token) == "credential_algorithm"
        # And the library itself, given the pinned list, refuses it too (defence in depth).
        with pytest.raises(JoseError):
            jws.deserialize_compact(token, public, algorithms=["ES256"])


@pytest.mark.parametrize("alg", ["ES384", "RS256", "EdDSA", "ES256K", "PS256", "es256"])
async def test_other_algorithms_are_refused_before_a_key_is_read(issued, alg):
    seen = []
    token = unsigned({**issued["header"], "alg": alg}, issued["claims"], b"\0" * 64)
    with pytest.raises(core.CredentialInvalid) as caught:
        core.verify_credential(token, lambda kid: seen.append(kid) or issued["jwks"].get(kid), issued["now"])
    assert caught.value.code == "credential_algorithm" and seen == []


async def test_an_eight_day_credential_signed_by_the_real_key_is_refused(issued):
    claims = {**issued["claims"], "exp": issued["claims"]["nbf"] + 8 * 86400}
    token = await sign_as_tenant(issued["app"], issued["tenant"]["id"], {"alg": "ES256", "typ": "dc+jwt"}, claims)
    assert refused(issued, token) == "credential_lifetime"
    # At every moment of its lifetime, not only near its end.
    for hours in (1, 24, 7 * 24 + 1):
        assert refused(issued, token, datetime.fromtimestamp(claims["nbf"] + hours * 3600, timezone.utc)) \
            == "credential_lifetime"
    # Exactly seven days is the ceiling, and accepted.
    seven = {**issued["claims"], "exp": issued["claims"]["nbf"] + 7 * 86400}
    token = await sign_as_tenant(issued["app"], issued["tenant"]["id"], {"alg": "ES256", "typ": "dc+jwt"}, seven)
    assert core.verify_credential(token, issued["jwks"].get, issued["now"])["exp"] == seven["exp"]


async def test_expired_and_not_yet_valid(issued):
    claims = issued["claims"]
    assert refused(issued, issued["token"], datetime.fromtimestamp(claims["exp"], timezone.utc)) == "credential_expired"
    assert refused(issued, issued["token"], datetime.fromtimestamp(claims["exp"] + 1, timezone.utc)) == "credential_expired"
    assert refused(issued, issued["token"], datetime.fromtimestamp(claims["nbf"] - 1, timezone.utc)) \
        == "credential_not_yet_valid"
    assert core.verify_credential(issued["token"], issued["jwks"].get, datetime.fromtimestamp(claims["nbf"], timezone.utc))


async def test_wrong_typ_and_unknown_kid(issued):
    for typ in ("JWT", "vc+jwt", None):
        header = {"alg": "ES256"} if typ is None else {"alg": "ES256", "typ": typ}
        token = await sign_as_tenant(issued["app"], issued["tenant"]["id"], header, issued["claims"])
        assert refused(issued, token) == "credential_type"
    token = unsigned({**issued["header"], "kid": "key_unknown"}, issued["claims"], b"\0" * 64)
    assert refused(issued, token) == "credential_issuer_unknown"


async def test_a_tampered_claim_breaks_the_signature(issued):
    h, _, s = issued["token"].split(".")
    for change in ({"block": {**issued["claims"]["block"], "last": issued["claims"]["block"]["last"] + 1000}},
                   {"caps": {**issued["claims"]["caps"], "max_invoice_total": "999999999999"}},
                   {"exp": issued["claims"]["exp"] + 3600}):
        forged = f"{h}.{b64url_encode(json.dumps({**issued['claims'], **change}).encode())}.{s}"
        assert refused(issued, forged) == "credential_signature"
    # A byte of the signature changed.
    sig = bytearray(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))
    sig[5] ^= 1
    assert refused(issued, f"{h}.{issued['token'].split('.')[1]}.{b64url_encode(bytes(sig))}") == "credential_signature"


async def test_a_device_signing_its_own_credential_is_refused(issued):
    """The device's key, naming the tenant's kid: the signature does not verify against the tenant's key."""
    signing_input = core.credential_signing_input(issued["header"], {**issued["claims"], "exp": issued["claims"]["exp"] + 60})
    token = core.compact_jws(signing_input, es256(issued["device_key"], signing_input))
    assert refused(issued, token) == "credential_signature"


async def test_bad_cnf_keys_are_refused_even_when_signed(issued):
    key = issued["device_key"]
    private = {**public_jwk(key), "d": b64url_encode(key.private_numbers().private_value.to_bytes(32, "big"))}
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key().public_numbers()
    other_curve = {"kty": "EC", "crv": "P-384", "x": b64url_encode(p384.x.to_bytes(48, "big")),
                   "y": b64url_encode(p384.y.to_bytes(48, "big"))}
    rsa_like = {"kty": "RSA", "n": "AQAB", "e": "AQAB"}
    off_curve = {**public_jwk(key), "y": public_jwk(ec.generate_private_key(ec.SECP256R1()))["y"]}
    for jwk in (private, other_curve, rsa_like, off_curve, None):
        claims = {**issued["claims"], "cnf": {"jwk": jwk}}
        token = await sign_as_tenant(issued["app"], issued["tenant"]["id"], {"alg": "ES256", "typ": "dc+jwt"}, claims)
        assert refused(issued, token) == "credential_malformed", jwk


async def test_malformed_tokens(issued):
    for token in ("", "a.b", "a.b.c.d", "!!.e30.", issued["token"].replace(".", "..", 1)):
        assert refused(issued, token) in {"credential_malformed", "credential_algorithm"}
    claims = {k: v for k, v in issued["claims"].items() if k != "block"}
    token = await sign_as_tenant(issued["app"], issued["tenant"]["id"], {"alg": "ES256", "typ": "dc+jwt"}, claims)
    assert refused(issued, token) == "credential_malformed"
