"""Each platform's webhook signature, checked on the raw bytes before anything parses them.

A signature is an HMAC-SHA256 of the exact body the platform sent: a body parsed and serialised again (key
order, spacing, unicode escapes) no longer verifies, which is why the check comes first and takes bytes.
The comparison is ``hmac.compare_digest`` (constant time): a byte-by-byte compare would leak, through its
timing, how much of a forged signature was right.

Encodings differ (docs/connectors.md, "Signatures"): Shopify and WooCommerce send base64, Tienda Nube hex.
WooCommerce keys the HMAC with the secret as WordPress stores it, after ``wp_specialchars_decode``
(``&amp;`` and friends turned back into characters), so a secret with such entities is decoded first.
Mercado Libre signs nothing: its notification is a pointer, never trusted, and the order is read back with
the seller's token (``topics.py``).
"""
from __future__ import annotations

import base64
import hashlib
import hmac

# What wp_specialchars_decode(..., ENT_QUOTES) turns back into characters (WordPress formatting.php).
_WP_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&#039;", "'"), ("&#x27;", "'"), ("&#39;", "'"),
                ("&amp;", "&"))

SIGNATURE_HEADERS = {
    "shopify": "x-shopify-hmac-sha256",
    "tiendanube": "x-linkedstore-hmac-sha256",
    "woocommerce": "x-wc-webhook-signature",
}


def _mac(secret: str, body: bytes) -> bytes:
    return hmac.new(secret.encode(), body, hashlib.sha256).digest()


def wp_specialchars_decode(secret: str) -> str:
    for entity, char in _WP_ENTITIES:
        secret = secret.replace(entity, char)
    return secret


def expected(platform: str, secret: str, body: bytes) -> str:
    """The signature the platform sends for ``body`` (also what our tests and simulators compute apart)."""
    if platform == "shopify":
        return base64.b64encode(_mac(secret, body)).decode()
    if platform == "tiendanube":
        return _mac(secret, body).hex()
    if platform == "woocommerce":
        return base64.b64encode(_mac(wp_specialchars_decode(secret), body)).decode()
    raise ValueError(f"{platform} signs no webhook")


def verify(platform: str, secret: str, body: bytes, signature: str | None) -> bool:
    """True when ``signature`` is the platform's signature of ``body`` under ``secret``; constant time."""
    if not signature or not secret:
        return False
    want = expected(platform, secret, body)
    if platform == "tiendanube":  # hex: case does not matter
        signature = signature.strip().lower()
    return hmac.compare_digest(want.encode(), signature.strip().encode())
