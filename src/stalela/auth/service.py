"""Who is calling: resolve the ``Authorization`` header to a ``Principal``."""
from __future__ import annotations

import hmac
import json
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.auth.apikeys import PREFIX, hash_api_key
from stalela.auth.principal import Principal
from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.errors import Unauthorized
from stalela.tenancy.context import bind_platform, bind_tenant
from stalela.tenancy.repository import ApiKeyRepository

# last_used_at is advisory; writing it on every request would turn every read into a write.
TOUCH_INTERVAL = timedelta(seconds=60)


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


async def authenticate_api_key(session: AsyncSession, authorization: str | None) -> tuple[Principal, bool]:
    """Returns the principal and whether ``last_used_at`` is stale. Binds the session to the tenant."""
    token = bearer_token(authorization)
    if not token.startswith(PREFIX) or len(token) > 128:
        raise Unauthorized("invalid API key", code="invalid_credentials")
    await bind_platform(session)
    found = await ApiKeyRepository(session).find_active_by_hash(hash_api_key(token))
    if found is None:
        raise Unauthorized("invalid API key", code="invalid_credentials")
    key, tenant = found
    if tenant.status in ("deprovisioning", "deleted"):
        raise Unauthorized("invalid API key", code="invalid_credentials")
    await bind_tenant(session, tenant.id)
    stale = key.last_used_at is None or utcnow() - key.last_used_at > TOUCH_INTERVAL
    principal = Principal(
        kind="api_key", tenant_id=tenant.id, api_key_id=key.id, outlet_id=key.outlet_id, tenant_status=tenant.status,
        scopes=frozenset(json.loads(key.scopes)) if key.scopes else None,
    )
    return principal, stale


async def authenticate_user(db, settings: Settings, session: AsyncSession, authorization: str | None) -> Principal:  # noqa: ANN001
    """An RS256 access token of a user; the user's current role and status come from the database."""
    from stalela.auth.tokens import verify_access_token
    from stalela.auth.users import active_user

    claims = await verify_access_token(db, settings, bearer_token(authorization))
    await bind_platform(session)
    user, tenant = await active_user(session, claims.get("tenant_id", ""), claims["sub"])
    await bind_tenant(session, tenant.id)
    outlets = frozenset(json.loads(user.outlet_ids)) if user.role == "cashier" else None
    return Principal(kind="user", tenant_id=tenant.id, tenant_status=tenant.status, user_id=user.id, role=user.role,
                     outlet_ids=outlets)


async def touch_api_key(session: AsyncSession, principal: Principal) -> None:
    await bind_tenant(session, principal.tenant_id)
    await ApiKeyRepository(session).touch(principal.tenant_id, principal.api_key_id)
