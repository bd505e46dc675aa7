"""Each tenant's caps (its plan's quotas), cached briefly in each process: sealing asks for them once
per group, and a tenant without caps must cost no query per seal. A change made through this process
(plan quotas, a tenant's plan) forgets at once; other processes see it within ``TTL_SECONDS``."""
from __future__ import annotations

import json
import time
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.billing.rating_repository import PlanRepository

TTL_SECONDS = 30.0
_MAX_TENANTS = 100_000  # a bound, not a tuning knob: past it the cache starts over
_cache: dict[str, tuple[float, dict[str, Decimal]]] = {}


def parse_quotas(text: str | None) -> dict[str, Decimal]:
    return {k: Decimal(v) for k, v in json.loads(text).items()} if text else {}


def cached(tenant_id: str) -> dict[str, Decimal] | None:
    """The tenant's caps if this process knows them (fresh), else None: no I/O either way."""
    hit = _cache.get(tenant_id)
    return hit[1] if hit is not None and hit[0] > time.monotonic() else None


async def caps(session: AsyncSession, tenant_id: str) -> dict[str, Decimal]:
    found = cached(tenant_id)
    if found is not None:
        return found
    now = time.monotonic()
    found = parse_quotas(await PlanRepository(session).quotas_of_tenant(tenant_id))
    if len(_cache) >= _MAX_TENANTS:
        _cache.clear()
    _cache[tenant_id] = (now + TTL_SECONDS, found)
    return found


def forget(tenant_id: str | None = None) -> None:
    """Drop one tenant's cached caps, or everyone's (a plan changed: many tenants may be on it)."""
    if tenant_id is None:
        _cache.clear()
    else:
        _cache.pop(tenant_id, None)
