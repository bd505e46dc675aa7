"""Golden signature vectors per platform, computed apart from our code (``openssl dgst -sha256 -hmac``):
one changed byte, or the same JSON serialised again, no longer verifies."""
from __future__ import annotations

import json

import pytest

from stalela.connectors import signatures

SHOPIFY = (b'{"id":820982911946154508,"email":"jon@example.com","total_price":"403.00"}', "hush",
           "U1ccMjH2FYDvXHngNSLFAi0QhStcm696l5sTvIkdLr8=")
TIENDANUBE = (b'{"store_id":123456,"event":"order/paid","id":987654321}', "app-secret-42",
              "2e411393d9caff5e7c7c5cde3160e60f3826af0f4e46660c8c2875a380273d91")
# WordPress keeps the secret HTML-escaped; WooCommerce signs with it after wp_specialchars_decode.
WOOCOMMERCE = (b'{"id":727,"status":"processing","total":"21.99","date_modified_gmt":"2026-11-30T10:00:00"}',
               "wc&amp;secret", "4PEE7kMRDGpHQrD2nTUv9xd6nLYP0gCgsVsUYFNwB8M=")
VECTORS = {"shopify": SHOPIFY, "tiendanube": TIENDANUBE, "woocommerce": WOOCOMMERCE}


@pytest.mark.parametrize("platform", VECTORS)
def test_the_golden_vector_verifies(platform):
    body, secret, signature = VECTORS[platform]
    assert signatures.expected(platform, secret, body) == signature
    assert signatures.verify(platform, secret, body, signature)


@pytest.mark.parametrize("platform", VECTORS)
def test_one_changed_byte_fails(platform):
    body, secret, signature = VECTORS[platform]
    for i in (0, len(body) // 2, len(body) - 1):
        changed = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1:]
        assert not signatures.verify(platform, secret, changed, signature)


@pytest.mark.parametrize("platform", VECTORS)
def test_reserialised_json_fails(platform):
    """The same object, parsed and dumped again (spaces after separators): another byte string."""
    body, secret, signature = VECTORS[platform]
    again = json.dumps(json.loads(body)).encode()
    assert again != body
    assert not signatures.verify(platform, secret, again, signature)


@pytest.mark.parametrize("platform", VECTORS)
def test_wrong_secret_missing_or_mangled_signature_fails(platform):
    body, secret, signature = VECTORS[platform]
    assert not signatures.verify(platform, secret + "x", body, signature)
    assert not signatures.verify(platform, secret, body, None)
    assert not signatures.verify(platform, secret, body, "")
    assert not signatures.verify(platform, "", body, signature)
    assert not signatures.verify(platform, secret, body, signature[:-2])


def test_tiendanube_hex_is_case_insensitive_and_base64_is_not_accepted():
    body, secret, signature = TIENDANUBE
    assert signatures.verify("tiendanube", secret, body, signature.upper())
    import base64
    assert not signatures.verify("tiendanube", secret, body, base64.b64encode(bytes.fromhex(signature)).decode())
