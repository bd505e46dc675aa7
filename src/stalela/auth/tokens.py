"""Access tokens: RS256 JWTs (15 minutes) signed by rotating platform keys, published as a JWKS.

The private keys are stored AES-GCM-encrypted under the master key (kit.secretbox). Verification pins
the algorithm to RS256 (no "none", no HMAC confusion) and finds the key by ``kid``.
"""
from __future__ import annotations

import base64
import json
import time
from datetime import timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from sqlalchemy import select

from stalela.auth.models import AuthKey
from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.db.session import Database
from stalela.errors import Unauthorized
from stalela.kit.ids import new_id, new_ulid
from stalela.kit.secretbox import open_secret, seal_secret
from stalela.tenancy.context import bind_platform

ISSUER = "stalela"
ACCESS_TTL = timedelta(minutes=15)
_CACHE_SECONDS = 60


class _KeyCache:
    def __init__(self) -> None:
        self.loaded_at = 0.0
        self.public: dict[str, Any] = {}  # kid -> public key object
        self.jwks: list[dict[str, Any]] = []
        self.signing: tuple[str, Any] | None = None


# One cache per database the keys are read from: a process serves one control plane, but one that opens two
# (tests, an embedding) must not sign with one's key and verify against the other's.
_caches: dict[str, _KeyCache] = {}


async def _load(db: Database, settings: Settings, *, force: bool = False) -> _KeyCache:
    _cache = _caches.setdefault(db.url, _KeyCache())
    if not force and time.monotonic() - _cache.loaded_at < _CACHE_SECONDS and _cache.signing:
        return _cache
    # Read-only: requests must never open a second write transaction (on SQLite it would wait for
    # the request's own). Keys are created at start-up (ensure_key) or by rotation.
    async with db.transaction(readonly=True) as session:
        await bind_platform(session)
        keys = list((await session.execute(select(AuthKey).order_by(AuthKey.id))).scalars())
    active = [k for k in keys if k.retired_at is None]
    if not active:
        raise Unauthorized("access tokens are not configured yet", code="token_keys_missing")
    _cache.public = {k.id: RSAAlgorithm.from_jwk(k.public_jwk) for k in keys}
    _cache.jwks = [json.loads(k.public_jwk) for k in keys]
    newest = active[-1]
    der = base64.b64decode(open_secret(settings, newest.private_key, f"auth-key:{newest.id}"))
    private = serialization.load_der_private_key(der, password=None)
    _cache.signing = (newest.id, private)
    _cache.loaded_at = time.monotonic()
    return _cache


async def _create(session, settings: Settings) -> AuthKey:  # noqa: ANN001
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = new_id("jwk")
    jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    jwk.update({"kid": kid, "alg": "RS256", "use": "sig"})
    der = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    key = AuthKey(id=kid, public_jwk=json.dumps(jwk), created_at=utcnow(),
                  private_key=seal_secret(settings, base64.b64encode(der).decode(), f"auth-key:{kid}"))
    session.add(key)
    await session.flush()
    return key


async def ensure_key(db: Database, settings: Settings) -> None:
    """At start-up: make sure an access-token key exists (several processes may race: harmless)."""
    async with db.transaction() as session:
        await bind_platform(session)
        if (await session.execute(select(AuthKey.id).where(AuthKey.retired_at.is_(None)).limit(1))).first() is None:
            await _create(session, settings)


async def rotate(db: Database, settings: Settings) -> str:
    """A new signing key; older keys stop signing but keep verifying until their tokens expire."""
    async with db.transaction() as session:
        await bind_platform(session)
        now = utcnow()
        for old in (await session.execute(select(AuthKey).where(AuthKey.retired_at.is_(None)))).scalars():
            old.retired_at = now
        key = await _create(session, settings)
    await _load(db, settings, force=True)
    return key.id


async def jwks(db: Database, settings: Settings) -> dict[str, Any]:
    return {"keys": (await _load(db, settings)).jwks}


async def issue_access_token(db: Database, settings: Settings, *, user_id: str, tenant_id: str, role: str,
                             email: str) -> tuple[str, int]:
    cache = await _load(db, settings)
    kid, private = cache.signing
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": user_id, "tenant_id": tenant_id, "role": role, "email": email,
              "jti": new_ulid(), "iat": now, "exp": now + int(ACCESS_TTL.total_seconds())}
    return jwt.encode(claims, private, algorithm="RS256", headers={"kid": kid}), int(ACCESS_TTL.total_seconds())


async def verify_access_token(db: Database, settings: Settings, token: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        # The operator token on a tenant route ends here too: one code for every credential that is not valid.
        raise Unauthorized("neither an API key (sk_...) nor a user's access token", code="invalid_credentials") from None
    if header.get("alg") != "RS256":
        raise Unauthorized("unsupported token algorithm", code="invalid_credentials")
    cache = await _load(db, settings)
    key = cache.public.get(header.get("kid"))
    if key is None:  # maybe rotated in another process since our cache was filled
        key = (await _load(db, settings, force=True)).public.get(header.get("kid"))
    if key is None:
        raise Unauthorized("unknown token key", code="invalid_credentials")
    try:
        return jwt.decode(token, key, algorithms=["RS256"], issuer=ISSUER,
                          options={"require": ["exp", "iat", "sub", "jti"]})
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the access token expired; refresh it", code="token_expired") from None
    except jwt.PyJWTError:
        raise Unauthorized("invalid access token", code="invalid_credentials") from None
