"""The ``api_calls`` quota: a plan may cap the API calls of a calendar month (UTC). Past the cap the API
answers ``429 quota_exceeded`` (``resource``, ``cap``, ``reset_at``, ``Retry-After``), like the seal quota.

A request gate of auth (``auth/gates.py``), registered when this module is imported (by the app factory):
it sees exactly the requests the API-call meter counts (authenticated with a tenant's key or token, under
``/v1/``); health, metrics, public verification, operator and console routes never reach it. The quota's
own endpoint is neither counted nor refused, and neither is a refused call: a tenant is not billed for
calls it was denied, and can always read why.

Cost. A tenant without an ``api_calls`` cap costs a dict lookup per request (the caps cache,
``quota_cache``, read again every 30 s). A capped tenant's use is estimated per process as

    the period's use as the usage service measured it at the last refresh (every ``REFRESH_SECONDS``)
    + what this process counted since and had not flushed by then (``ApiCallCounter``),

so a refresh is a few indexed reads per capped tenant every few seconds, and a request none. The estimate
errs one way only: it never counts a call that was not made, so no call is refused before the cap. It
misses the calls other API processes made since their last flush plus the refresh interval, and calls in
flight: the cap may be passed by about (the tenant's request rate on the other processes) x
(``usage_flush_seconds`` + ``REFRESH_SECONDS``) + its concurrent requests.

Only API calls are refused here, and never those recording usage (``/v1/usage/events...``, counted all
the same): usage recorded by meters is never refused whatever the plan caps, since refusing it would lose
usage that happened anyway, which is worse than billing it (and a tenant past its API call cap would
otherwise stop being billed for the rest).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Awaitable, Callable, TypeVar

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.auth import gates
from stalela.auth.principal import Principal
from stalela.billing import quota_cache, quotas, usage_service
from stalela.billing.usage_metering import UNCOUNTED, ApiCallCounter
from stalela.db.base import utcnow
from stalela.tenancy.context import bind_tenant

RESOURCE = "api_calls"
REFRESH_SECONDS = 5.0
# The quota's own endpoint: a tenant over its cap can always read its quotas (and is not billed for it).
EXEMPT = frozenset({"/v1/billing/quotas"})
# Recording usage is never refused (counted, though): refusing a meter's events would lose usage.
NEVER_REFUSED = "/v1/usage/events"
T = TypeVar("T")


@dataclass(frozen=True)
class Measured:
    """A capped tenant's period use as last read from the database, and this process's flushed count then."""

    period_start: datetime
    used: Decimal
    flushed: int
    expires: float


def estimate(counter: ApiCallCounter, tenant_id: str, measured: Measured) -> Decimal:
    """The period's calls so far: those the database held at the refresh, plus those this process counted
    that were not flushed by then (flushed before the read: in ``used``; after: still in the difference)."""
    return measured.used + (counter.counted.get(tenant_id, 0) - measured.flushed)


async def _read(state: Any, tenant_id: str, session: AsyncSession | None,
                read: Callable[[AsyncSession], Awaitable[T]]) -> T:
    if session is not None:
        return await read(session)
    async with state.db.transaction(readonly=True) as own:
        await bind_tenant(own, tenant_id)
        return await read(own)


async def _measured(state: Any, counter: ApiCallCounter, tenant_id: str, session: AsyncSession | None,
                    now: datetime) -> Measured:
    start, end = quotas.period_of(now)
    found = counter.measured.get(tenant_id)
    clock = time.monotonic()
    if found is not None and found.expires > clock and found.period_start == start:
        return found
    used = await _read(state, tenant_id, session,
                       lambda s: usage_service.period_used(s, tenant_id, RESOURCE, start.date(), end.date()))
    # Read after the database: a flush that committed meanwhile is missed until the next refresh, never
    # counted twice (the estimate errs low).
    found = Measured(start, used, counter.flushed.get(tenant_id, 0), clock + REFRESH_SECONDS)
    counter.measured[tenant_id] = found
    return found


@gates.register
async def api_calls_gate(request: Request, principal: Principal, session: AsyncSession | None) -> None:
    path = request.scope["path"]  # not request.url: it builds a whole URL, on every request
    if path in EXEMPT:
        setattr(request.state, UNCOUNTED, True)
        return
    # The meter counts /v1/ alone.
    if not path.startswith("/v1/") or path.startswith(NEVER_REFUSED):
        return
    try:
        await check_cap(request.app.state, principal, session)
    except quotas.QuotaExceeded:
        setattr(request.state, UNCOUNTED, True)
        raise


async def check_cap(state: Any, principal: Principal, session: AsyncSession | None) -> None:
    """Refuse a call past the tenant's ``api_calls`` cap (``QuotaExceeded``), for the REST gate above and the
    MCP server's tool calls (each counted as an API call). ``state``: the app's (its settings, database and
    counter)."""
    settings = state.settings
    counter: ApiCallCounter | None = getattr(state, "api_calls", None)
    # Without metering there is no count to hold a cap against.
    if counter is None or not settings.usage_metering:
        return
    tenant_id = principal.tenant_id
    caps = quota_cache.cached(tenant_id)
    if caps is None:
        caps = await _read(state, tenant_id, session, lambda s: quota_cache.caps(s, tenant_id))
    cap = caps.get(RESOURCE)
    if cap is None:
        return
    now = utcnow()
    measured = await _measured(state, counter, tenant_id, session, now)
    if estimate(counter, tenant_id, measured) >= cap:
        raise quotas.QuotaExceeded(RESOURCE, cap, now)
