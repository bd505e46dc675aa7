"""FastAPI dependencies: the request's transaction and the caller's identity.

The request owns the transaction: ``db_session`` opens it before the endpoint runs and commits right
after the endpoint returns (``scope="function"``), before the response leaves, so a client never sees
a 201 for something that did not commit.
"""
from __future__ import annotations

import asyncio
import ipaddress
import math
import re
from typing import Annotated, Any, AsyncIterator

from fastapi import Depends, Query, Request
from fastapi.security import HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.audit import platform as platform_audit
from stalela.auth import gates
from stalela.auth.principal import Principal
from stalela.config import Settings
from stalela.auth.apikeys import PREFIX
from stalela.auth.permissions import Perm, check, check_provisioned, check_writable
from stalela.auth.service import (
    authenticate_api_key,
    authenticate_operator,
    authenticate_user,
    bearer_token,
    cached_api_key,
    touch_api_key,
)
from stalela.errors import Forbidden, NotFound, ServiceUnavailable, TooManyRequests
from stalela.kit.openapi import answers
from stalela.kit.schemas import ID_PATTERN
from stalela.observability import context as log_context
from stalela.observability.logging import get_logger
from stalela.tenancy.context import bind_platform, bind_tenant
from stalela.tenancy.repository import TenantRepository

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
log = get_logger("stalela.auth")
_bearer = HTTPBearer(auto_error=False, description="A tenant API key (sk_...) or a user's access token on the tenant API; the "
                     "operator token on the operator API. A credential that is not valid where it is sent: "
                     "401 invalid_credentials.")


@answers(503)  # the database (or, for a seal, the key store) is unavailable
async def _db_session(request: Request) -> AsyncIterator[AsyncSession]:
    try:
        async with request.app.state.db.transaction(readonly=request.method in SAFE_METHODS) as session:
            yield session
    except (ServiceUnavailable, asyncio.CancelledError):
        # An outage or a cancelled request: another transaction would only delay the answer (or the cancel).
        request.state.stale_api_key = None
        raise
    finally:
        # A request that failed after authentication (403, 404, 422...) was still a use of the key.
        await _touch_stale_key(request, best_effort=True)


DbSession = Annotated[AsyncSession, Depends(_db_session, scope="function")]


def _settings(request: Request) -> Settings:
    return request.app.state.settings


AppSettings = Annotated[Settings, Depends(_settings)]


def client_ip(request: Request) -> str | None:
    """The caller's address as stored in the audit log, or None.

    Behind a trusted proxy (uvicorn's proxy headers, loopback by default) the address is whatever text
    X-Forwarded-For carries: only an IP address is kept, so no text longer than the column gets stored.
    """
    host = request.client.host if request.client else None
    try:
        return str(ipaddress.ip_address(host)) if host else None
    except ValueError:
        return None


async def _public_session(session: DbSession) -> AsyncSession:
    """Unauthenticated public reads (keys, verification page) that must find rows of any tenant."""
    await bind_platform(session)
    return session


PublicSession = Annotated[AsyncSession, Depends(_public_session)]

# The tenant a receipt's QR code names (``?t=``): any text, like the invoice id beside it (a forged QR code
# gets "not found", not a schema error), but bounded.
_QrTenant = Annotated[str | None, Query(max_length=1000, description="The issuing tenant, as printed in the QR "
                                        "code's URL: the page reads the tenant's own database")]


@answers(404)
async def _verification_session(session: DbSession, t: _QrTenant = None) -> AsyncSession:
    """The public pages a QR code opens (an invoice, a Z report). An id alone does not say which database
    holds it: a QR code names its tenant (``t``), whose database the session then reads, bound to that
    tenant alone; a URL without it (printed before the dedicated tier) reads the shared database."""
    await bind_platform(session)
    if t is None:
        return session
    # A tenant being provisioned has no database to read yet: nothing to verify there either.
    if not re.fullmatch(ID_PATTERN, t) or (tenant := await TenantRepository(session).get(t)) is None \
            or tenant.status == "provisioning":
        raise NotFound("no such tenant", code="not_found", field="t")
    await bind_tenant(session, t)
    return session


VerificationSession = Annotated[AsyncSession, Depends(_verification_session)]


@answers(401, 403, 409, 429)  # 409 tenant_deprovisioning (a write while offboarded), tenant_provisioning
async def _tenant_principal(request: Request, session: DbSession, _doc=Depends(_bearer)) -> Principal:
    return await _authenticate(request, session, readonly=request.method in SAFE_METHODS)


@answers(401, 403, 409, 429, 503)
async def _tenant_principal_alone(request: Request, _doc=Depends(_bearer)) -> Principal:
    """The caller, checked in a short read transaction of its own (or none, for a recently verified API
    key): for endpoints that hand the work to another transaction (sealing) and must not hold a pooled
    connection while they wait for it."""
    principal = cached_api_key(request.headers.get("authorization"))
    if principal is not None:
        return await _admit(request, principal, None)
    async with request.app.state.db.transaction(readonly=True) as session:
        principal = await _authenticate(request, session, readonly=True)
    await _touch_stale_key(request)
    return principal


async def _authenticate(request: Request, session: AsyncSession, *, readonly: bool) -> Principal:
    authorization = request.headers.get("authorization")
    principal = cached_api_key(authorization)
    if principal is not None:
        await bind_tenant(session, principal.tenant_id)
        return await _admit(request, principal, session)
    if not bearer_token(authorization).startswith(PREFIX):
        principal = await authenticate_user(request.app.state.db, request.app.state.settings, session, authorization)
        stale = False
    else:
        principal, stale = await authenticate_api_key(session, authorization)
    await _admit(request, principal, session)
    if stale:
        if not readonly:
            await touch_api_key(session, principal)
        else:
            # A read transaction must not write (on SQLite it would have to upgrade its lock), and must not
            # open a second transaction while it holds its connections: a dedicated tenant's pool (a few
            # connections, no overflow) held by requests each waiting for another one of it stalled every
            # request of that tenant until the pool's timeout. Touched once this transaction has ended.
            request.state.stale_api_key = principal
    return principal


async def _touch_stale_key(request: Request, *, best_effort: bool = False) -> None:
    """Record the last use of a key ``_authenticate`` found stale, in a transaction of its own. After a
    request's work (``best_effort``) a failure is logged, never the answer: the work is committed already."""
    principal = getattr(request.state, "stale_api_key", None)
    if principal is None:
        return
    request.state.stale_api_key = None
    try:
        async with request.app.state.db.transaction() as side:
            await touch_api_key(side, principal)
    except Exception:
        if not best_effort:
            raise
        log.warning("api_key_touch_failed", tenant_id=principal.tenant_id, api_key_id=principal.api_key_id)


async def _admit(request: Request, principal: Principal, session: AsyncSession | None) -> Principal:
    """What every authenticated tenant request goes through: context, rate limit, tenant status, and the
    gates domains registered (``gates.py``: billing's API call quota). ``session``: the request's, bound
    to the tenant, if one is open."""
    check_provisioned(principal.tenant_status)
    request.state.tenant_id = principal.tenant_id
    log_context.bind(tenant_id=principal.tenant_id)  # on every log line and the span from here on
    await _rate_limit(request, principal)
    if request.method not in SAFE_METHODS:
        check_writable(principal)
    await gates.admit(request, principal, session)
    return principal


async def _rate_limit(request: Request, principal: Principal) -> None:
    """A token bucket per API key or user (shared across processes when Redis is configured), with the
    tenant's own numbers when the operator set them."""
    limiter = request.app.state.limiter
    rate, burst = limiter.limits(principal.rate_per_second, principal.rate_burst)
    await _take(request, f"{principal.kind}:{principal.api_key_id or principal.user_id}", rate, burst,
                "rate limit exceeded; slow down")


async def _take(request: Request, key: str, rate: float, burst: int, detail: str) -> None:
    decision = await request.app.state.limiter.take(key, rate, burst)
    headers = {"RateLimit-Limit": str(burst), "RateLimit-Remaining": str(decision.remaining),
               "RateLimit-Reset": str(max(1, round(decision.retry_after)) if not decision.allowed else 0),
               # The bucket's size and the seconds an empty one takes to refill: the rate, in the draft
               # standard's terms (draft-ietf-httpapi-ratelimit-headers).
               "RateLimit-Policy": f"{burst};w={max(1, math.ceil(burst / rate))}"}
    request.scope.setdefault("state", {})["ratelimit_headers"] = headers
    if not decision.allowed:
        retry = max(1, round(decision.retry_after + 0.5))
        raise TooManyRequests(detail, code="rate_limited", headers=headers | {"Retry-After": str(retry)})


@answers(429)
async def _public_rate_limit(request: Request) -> None:
    """A token bucket per client IP for the routes anyone may call unauthenticated (sign-in, refresh,
    invitations, verification pages, public keys): guessing and scraping cost the same everywhere."""
    settings = request.app.state.settings
    await _take(request, f"ip:{client_ip(request) or 'unknown'}", settings.public_rate_limit_per_second,
                settings.public_rate_limit_burst, "too many requests from this address; slow down")


# ``dependencies=[PublicRateLimit]`` on a route or a router; it runs before the route's other parts
# (FastAPI resolves those dependencies first), so a refused request opens no transaction.
PublicRateLimit = Depends(_public_rate_limit)


@answers(401)
async def _operator_principal(request: Request, session: DbSession, _doc=Depends(_bearer)) -> Principal:
    principal = authenticate_operator(request.headers.get("authorization"), request.app.state.settings)
    await bind_platform(session)
    if request.method not in SAFE_METHODS:
        # Every write of the operator API is in the platform audit log, in the request's own transaction
        # (a refused or failed request leaves none); domains add entries naming the effect besides.
        route = request.scope.get("route")
        await platform_audit.record(session, principal.platform_actor, "api.write", None,
                                    {"method": request.method, "route": getattr(route, "path", request.url.path),
                                     "params": dict(request.path_params)}, ip=client_ip(request))
    return principal


TenantPrincipal = Annotated[Principal, Depends(_tenant_principal)]


async def _tenant_session(request: Request, session: DbSession) -> AsyncSession:
    """The request's transaction bound to the caller's tenant, for routes whose caller was checked in a
    transaction of its own (``own_transaction``) so that slow work (a URL's DNS lookup) runs before
    this one holds a lock or a pooled connection. The route lists the caller and that work first."""
    tenant_id = getattr(request.state, "tenant_id", None)
    if tenant_id is None:
        raise RuntimeError("TenantSession needs the caller checked first: list the principal before it")
    await bind_tenant(session, tenant_id)
    return session


TenantSession = Annotated[AsyncSession, Depends(_tenant_session)]


def Allow(perm: Perm, *, own_transaction: bool = False) -> Any:  # noqa: N802 - reads as a declaration
    """``principal: Annotated[Principal, Allow(Perm.X)]``: authenticated, in a tenant, and allowed X.

    ``own_transaction``: authenticate in a short transaction of its own instead of the request's.
    """
    if own_transaction:
        # One dependency, not two: FastAPI's resolution of each costs a sealing request more than the
        # check itself. (The two-level form below shares the caller's check between the permissions of
        # one route; a route names one permission with its own transaction.)
        @answers(403, *_tenant_principal_alone.error_statuses)
        async def allowed(request: Request, _doc=Depends(_bearer)) -> Principal:  # noqa: B008
            principal = await _tenant_principal_alone(request)
            check(principal, perm)
            return principal
    else:
        @answers(403)
        async def allowed(principal: Principal = Depends(_tenant_principal)) -> Principal:  # noqa: B008
            check(principal, perm)
            return principal

    allowed.required_permission = perm  # read by the role matrix test
    return Depends(allowed)


def Can(perm: Perm, *, own_transaction: bool = False) -> Any:  # noqa: N802
    """The annotation form: ``principal: Can(Perm.INVOICES_WRITE)``."""
    return Annotated[Principal, Allow(perm, own_transaction=own_transaction)]
OperatorPrincipal = Annotated[Principal, Depends(_operator_principal)]


def require_unrestricted(principal: Principal) -> None:
    """Managing outlets and keys is for tenant-wide keys, not a till's key restricted to one outlet."""
    if principal.restricted:
        raise Forbidden("this API key is restricted to one outlet", code="api_key_outlet_restricted")
