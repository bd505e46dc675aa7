"""Offline verification with only public keys: synthetic offline invoices built with the shared core and
real P-256 keys, tampered every way the issue lists; webhook signatures against the server's own signer."""
from __future__ import annotations

import copy
import hashlib
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from stalela.fiscal.core import offline
from stalela.fiscal.core.disclosure import buyer_commitment, new_salt
from stalela.fiscal.core.seal import b64url_encode, build_seal, canonical_bytes, public_jwk_from_public_key
from stalela.kit import canonical
from stalela.webhooks import signing as server_signing
from stalela_sdk import Webhook, WebhookVerificationError, verify_invoice
from stalela_sdk.webhooks import sign as sdk_sign

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
TENANT, OUTLET, SERIES, BLOCK, DEVICE = "ten_t1", "out_o1", "ser_s1", "blk_b1", "dev_d1"


def _raw_sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


class World:
    """A tenant key, a device key, a credential over block 11..20 and helpers to seal offline invoices."""

    def __init__(self, lifetime: timedelta = timedelta(hours=72)) -> None:
        self.tenant_key = ec.generate_private_key(ec.SECP256R1())
        self.tenant_jwk = public_jwk_from_public_key(self.tenant_key.public_key(), "sig_tenant")
        self.jwks = {"keys": [self.tenant_jwk]}
        self.device_key = ec.generate_private_key(ec.SECP256R1())
        self.device_jwk = offline.device_public_jwk(public_jwk_from_public_key(self.device_key.public_key(), "x"))
        self.claims = self.credential_claims(lifetime)
        self.credential = self.issue(self.claims)

    def credential_claims(self, lifetime: timedelta) -> dict[str, Any]:
        nbf = int((NOW - timedelta(hours=1)).timestamp())
        return {"iss": "https://fiscal.example", "sub": DEVICE, "jti": "dcr_1", "iat": nbf, "nbf": nbf,
                "exp": nbf + int(lifetime.total_seconds()), "vct": offline.CREDENTIAL_VCT, "tenant_id": TENANT,
                "jurisdiction": "CD", "cnf": {"jwk": self.device_jwk}, "outlet": OUTLET, "series": SERIES,
                "block": {"id": BLOCK, "first": 11, "last": 20, "anchor": "a" * 64},
                "caps": {"max_invoice_total": "1000000"}}

    def issue(self, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
        header = header or {"alg": "ES256", "typ": offline.CREDENTIAL_TYP, "kid": "sig_tenant"}
        signing_input = offline.credential_signing_input(header, claims)
        return offline.compact_jws(signing_input, _raw_sign(self.tenant_key, signing_input))

    def invoice(self, counter: int = 11, *, issued_at: datetime = NOW, signer: ec.EllipticCurvePrivateKey | None = None,
                buyer: dict[str, Any] | None = None) -> dict[str, Any]:
        lines = [{"index": 0, "description": "Riz", "code": None, "item_type": "BIE", "tax_group": "B",
                  "quantity": "2", "unit_price": "100.00", "amount": "200.00"}]
        totals = {"groups": [{"group": "B", "rate": "0.16", "amount": "200.00", "base": "200.00", "vat": "32.00"}],
                  "total": "232.00", "vat_settled_by_credit": "0.00", "payable": "232.00"}
        salt = new_salt() if buyer else None
        at = issued_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        payload = offline.invoice_payload(
            version=2, jurisdiction="CD", tenant_id=TENANT, seller_tax_id="A1", outlet_id=OUTLET, series_id=SERIES,
            counter=counter, fiscal_number=f"MAIN-{counter:08d}", invoice_id=f"inv_{counter}", type="FV",
            price_mode="ht", issued_at=at, currency="CDF", totals=totals,
            lines_hash=hashlib.sha256(canonical.dumps(lines)).hexdigest(), line_count=1, buyer_tax_id=None,
            buyer_commitment=buyer_commitment(salt, buyer) if buyer else None, nature=None, original=None,
            exchange=None, key_id=self.device_jwk["kid"], prev_hash="a" * 64,
            offline=offline.offline_marker("dcr_1", BLOCK, DEVICE))
        signature = _raw_sign(signer or self.device_key, canonical_bytes(payload))
        doc = {"id": payload["invoice_id"], "object": "invoice", "lines": lines, "buyer": buyer, "buyer_salt": salt,
               **{k: copy.deepcopy(payload[k]) for k in ("tenant_id", "outlet_id", "fiscal_number", "counter", "type", "price_mode",
                                          "issued_at", "currency", "nature", "original", "totals", "exchange")},
               "seal": build_seal(payload, signature, self.device_jwk["kid"])}
        return doc


@pytest.fixture(scope="module")
def world() -> World:
    return World()


def test_an_offline_invoice_verifies_with_the_credential_then_its_cnf_key(world):
    inv = world.invoice(buyer={"type": "PP", "name": "Awa", "tax_id": "P1"})
    result = verify_invoice(inv, world.jwks, credential=world.credential, tenant_id=TENANT)
    assert result, result
    assert result.credential["jti"] == "dcr_1"
    # Carried beside the invoice instead of passed: found there.
    assert verify_invoice({**inv, "offline": {"credential_jws": world.credential}}, world.jwks)
    assert verify_invoice(inv, world.jwks).code == "credential_missing"


@pytest.mark.parametrize("tamper, code", [
    (lambda d: d["totals"].update(total="1.00"), "document_altered"),
    (lambda d: d["lines"][0].update(quantity="3"), "lines_altered"),
    (lambda d: d["seal"]["payload"].update(total="1.00"), "seal_invalid"),
    (lambda d: d.update(buyer={"type": "PP", "name": "Someone else", "tax_id": "P2"}), "buyer_altered"),
    (lambda d: d["seal"].update(signature=d["seal"]["signature"][:-2] + ("AA" if d["seal"]["signature"][-2:] != "AA" else "AB")),
     "seal_invalid"),
])
def test_a_changed_byte_is_named(world, tamper, code):
    inv = world.invoice(buyer={"type": "PP", "name": "Awa", "tax_id": "P1"})
    tamper(inv)
    assert verify_invoice(inv, world.jwks, credential=world.credential).code == code


def test_signed_by_another_key_than_cnf(world):
    thief = ec.generate_private_key(ec.SECP256R1())
    assert verify_invoice(world.invoice(signer=thief), world.jwks, credential=world.credential).code == "seal_invalid"


def test_outside_the_block_or_the_credential_time(world):
    assert verify_invoice(world.invoice(counter=21), world.jwks,
                          credential=world.credential).code == "offline_number_outside_block"
    late = world.invoice(issued_at=NOW + timedelta(days=5))
    assert verify_invoice(late, world.jwks, credential=world.credential).code == "credential_expired"
    early = world.invoice(issued_at=NOW - timedelta(days=1))
    assert verify_invoice(early, world.jwks, credential=world.credential).code == "credential_not_yet_valid"


def test_forged_credentials_are_refused(world):
    inv = world.invoice()
    eight_days = world.issue(world.credential_claims(timedelta(days=8)))
    assert verify_invoice(inv, world.jwks, credential=eight_days).code == "credential_lifetime"
    head, body, _ = world.credential.split(".")
    none_header = b64url_encode(json.dumps({"alg": "none", "typ": "dc+jwt", "kid": "sig_tenant"}).encode())
    assert verify_invoice(inv, world.jwks, credential=f"{none_header}.{body}.").code == "credential_algorithm"
    hs_header = b64url_encode(json.dumps({"alg": "HS256", "typ": "dc+jwt", "kid": "sig_tenant"}).encode())
    assert verify_invoice(inv, world.jwks, credential=f"{hs_header}.{body}.AAAA").code == "credential_algorithm"
    # Claims changed after signing (another block), or signed by a key the tenant does not publish.
    wider = copy.deepcopy(world.claims)
    wider["block"]["last"] = 99
    swapped = f"{head}.{b64url_encode(canonical.dumps(wider))}.{world.credential.split('.')[2]}"
    assert verify_invoice(inv, world.jwks, credential=swapped).code == "credential_signature"
    stranger = World()
    assert verify_invoice(inv, stranger.jwks, credential=world.credential).code == "credential_signature"
    assert verify_invoice(inv, {"keys": []}, credential=world.credential).code == "credential_issuer_unknown"
    # A valid credential of another device: the invoice's marker does not name it.
    other = copy.deepcopy(world.claims)
    other["sub"] = "dev_other"
    assert verify_invoice(inv, world.jwks, credential=world.issue(other)).code == "offline_credential_mismatch"


def test_hostile_input_never_raises(world):
    for junk in (None, {}, {"seal": "x"}, {"seal": {"payload": {"offline": 3}}}, {"seal": {"payload": {}}}):
        assert not verify_invoice(junk, world.jwks, credential="a.b.c")  # type: ignore[arg-type]


# --- webhooks: vectors from the server's own signer -----------------------------------------------------------


def test_webhook_signed_by_the_server_verifies_with_tolerance_and_rotation():
    old, new = server_signing.new_secret(), server_signing.new_secret()
    body = b'{"type":"invoice.sealed","timestamp":"2026-11-22T21:05:11.538Z","data":{"invoice_id":"inv_1"}}'
    ts = int(time.time())
    headers = server_signing.headers([new, old], "msg_1", ts, body)
    assert Webhook(new).verify(body, headers)["data"]["invoice_id"] == "inv_1"
    assert Webhook(old).verify(body, headers)
    assert Webhook([server_signing.new_secret(), old]).verify(body, {k.upper(): v for k, v in headers.items()})
    assert sdk_sign(new, "msg_1", ts, body) == server_signing.sign(new, "msg_1", ts, body)
    with pytest.raises(WebhookVerificationError, match="no signature"):
        Webhook(server_signing.new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError, match="no signature"):
        Webhook(new).verify(body + b" ", headers)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(new).verify(body, headers, now=ts + 301)
    with pytest.raises(WebhookVerificationError, match="future"):
        Webhook(new, tolerance=10).verify(body, headers, now=ts - 11)
    assert Webhook(new, tolerance=10).verify(body, headers, now=ts + 10)
    with pytest.raises(WebhookVerificationError, match="missing"):
        Webhook(new).verify(body, {"webhook-id": "msg_1"})
    mixed = {**headers, "webhook-signature": "v1a,xyz v1,@@@ " + headers["webhook-signature"]}
    assert Webhook(old).verify(body, mixed)
