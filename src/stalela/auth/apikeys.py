"""API key secrets: ``sk_`` + 32 random bytes (base32), stored only as a SHA-256 hash.

A fast hash is right here (unlike passwords): the secret has 256 bits of entropy, so it cannot be
guessed from its hash, and authentication must stay cheap on every request.
"""
from __future__ import annotations

import base64
import hashlib
import secrets

PREFIX = "sk_"


def generate_api_key() -> tuple[str, str, str]:
    """Returns (secret, display prefix, hash)."""
    body = base64.b32encode(secrets.token_bytes(32)).decode().rstrip("=").lower()
    secret = PREFIX + body
    return secret, secret[: len(PREFIX) + 8], hash_api_key(secret)


def hash_api_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
