"""Who is calling: resolve the ``Authorization`` header to a ``Principal``."""
from __future__ import annotations

import hmac
import json
import time
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.auth.apikeys import PREFIX, hash_api_key
from stalela.auth.principal import Principal
from stalela.auth.permissions import check_provisioned
from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.errors import Unauthorized
from stalela.tenancy.context import bind_platform, bind_tenant
from stalela.tenancy.repository import ApiKeyRepository

# last_used_at is advisory; writing it on every request would turn every read into a write.
TOUCH_INTERVAL = timedelta(seconds=60)


class ApiKeyCache:
    """API keys this process verified in the last ``ttl`` seconds, by the key's hash.

    Looking a key up costs a read transaction (three statements) on every request, more than a
    whole seal's share of a group commit. A revocation or a tenant's suspension made in this process
    clears the cache at once; one made in another process takes effect here within ``ttl``
    (``STALELA_AUTH_CACHE_SECONDS``, 0 turns the cache off). Written by hand: a dict with deadlines
    is all it takes, and it must be cleared from the services that revoke.
    """

    def __init__(self, ttl: float = 0.0, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, key_hash: str) -> Principal | None:
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            self._entries.pop(key_hash, None)
            return None
        return entry[1]

    def put(self, key_hash: str, principal: Principal) -> None:
        if self.ttl <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # a crude bound; a full cache only costs lookups again
        self._entries[key_hash] = (time.monotonic() + self.ttl, principal)

    def clear(self) -> None:
        self._entries.clear()


API_KEYS = ApiKeyCache()


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("missing Authorization header", code="missing_credentials")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("expected 'Authorization: Bearer <token>'", code="invalid_credentials")
    return token.strip()


def authenticate_operator(authorization: str | None, settings: Settings) -> Principal:
    token = bearer_token(authorization)
    expected = settings.operator_token.get_secret_value() if settings.operator_token else ""
    if not expected:
        raise Unauthorized("the operator API is disabled: set STALELA_OPERATOR_TOKEN", code="operator_disabled")
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise Unauthorized("invalid operator token", code="invalid_credentials")
    return Principal(kind="operator")


def cached_api_key(authorization: str | None) -> Principal | None:
    """The principal of a recently verified API key (see ``ApiKeyCache``), or None."""
    token = bearer_token(authorization)
    if not token.startswith(PREFIX) or len(token) > 128 or API_KEYS.ttl <= 0:
        return None
    return API_KEYS.get(hash_api_key(token))


async def authenticate_api_key(session: AsyncSession, authorization: str | None) -> tuple[Principal, bool]:
    """Returns the principal and whether ``last_used_at`` is stale. Binds the session to the tenant."""
    token = bearer_token(authorization)
    if not token.startswith(PREFIX) or len(token) > 128:
        raise Unauthorized("invalid API key", code="invalid_credentials")
    await bind_platform(session)
    key_hash = hash_api_key(token)
    found = await ApiKeyRepository(session).find_active_by_hash(key_hash)
    if found is None:
        raise Unauthorized("invalid API key", code="invalid_credentials")
    key, tenant = found
    if tenant.status == "deleted":  # deprovisioning still reads: the merchant fetches its data
        raise Unauthorized("invalid API key", code="invalid_credentials")
    check_provisioned(tenant.status)
    await bind_tenant(session, tenant.id)
    stale = key.last_used_at is None or utcnow() - key.last_used_at > TOUCH_INTERVAL
    principal = Principal(
        kind="api_key", tenant_id=tenant.id, api_key_id=key.id, outlet_id=key.outlet_id, tenant_status=tenant.status,
        jurisdiction=tenant.jurisdiction,
        scopes=frozenset(json.loads(key.scopes)) if key.scopes else None,
        rate_per_second=tenant.rate_limit_per_second, rate_burst=tenant.rate_limit_burst,
    )
    if not stale:  # a stale key is touched first; the next request caches it
        API_KEYS.put(key_hash, principal)
    return principal, stale


async def authenticate_user(db, settings: Settings, session: AsyncSession, authorization: str | None) -> Principal:  # noqa: ANN001
    """An RS256 access token of a user; the user's current role and status come from the database."""
    from stalela.auth.tokens import verify_access_token
    from stalela.auth.users import active_user

    claims = await verify_access_token(db, settings, bearer_token(authorization))
    await bind_platform(session)
    user, tenant = await active_user(session, claims.get("tenant_id", ""), claims["sub"])
    check_provisioned(tenant.status)
    await bind_tenant(session, tenant.id)
    outlets = frozenset(json.loads(user.outlet_ids)) if user.role == "cashier" else None
    return Principal(kind="user", tenant_id=tenant.id, tenant_status=tenant.status, user_id=user.id, role=user.role,
                     outlet_ids=outlets, jurisdiction=tenant.jurisdiction,
                     rate_per_second=tenant.rate_limit_per_second, rate_burst=tenant.rate_limit_burst)


async def touch_api_key(session: AsyncSession, principal: Principal) -> None:
    await bind_tenant(session, principal.tenant_id)
    await ApiKeyRepository(session).touch(principal.tenant_id, principal.api_key_id)
