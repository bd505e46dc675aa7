"""Quotas: a plan may cap a resource per calendar month (UTC). Over the cap the API answers 429
``quota_exceeded`` with the resource, the cap and the period's end (``reset_at``, and ``Retry-After``).

``invoices_sealed`` is enforced where seals are numbered, through the fiscal admission gate registered
below (the platform's own bills are exempt: ``_exempt``): the count is exact (the tenant's documents of the period, read under the tenant's log lock,
plus those admitted earlier in the same group), and a refused seal consumes no number. Importing this
module registers the gate; the composition roots (``workers.py``, ``sealers.py``) import it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.billing import quota_cache, usage_service
from stalela.billing.bill_lines import SYSTEM_KEY_ID
from stalela.billing.rating_repository import invoices_issued
from stalela.billing.rating_service import account
from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.kit.money import decimal_str
from stalela.errors import TooManyRequests
from stalela.fiscal.invoices import admission
from stalela.kit.clock import rfc3339

INVOICES = "invoices_sealed"


def period_of(now: datetime) -> tuple[datetime, datetime]:
    """The calendar month (UTC) holding ``now``: [first instant, first instant of the next)."""
    now = now.astimezone(timezone.utc)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


class QuotaExceeded(TooManyRequests):
    code = "quota_exceeded"
    title = "Quota exceeded"

    def __init__(self, resource: str, cap: Decimal, now: datetime) -> None:
        _, reset = period_of(now)
        super().__init__(
            f"the plan allows {decimal_str(cap)} {resource} per month; the quota resets at {rfc3339(reset)}",
            field=resource, extra={"resource": resource, "cap": decimal_str(cap), "reset_at": rfc3339(reset)},
            headers={"Retry-After": str(max(1, int((reset - now).total_seconds() + 0.999)))})


@dataclass
class _InvoiceGate:
    cap: Decimal
    used: int
    now: datetime

    def admit(self, request: Any) -> None:
        if _exempt(request):
            return
        if self.used + 1 > self.cap:
            raise QuotaExceeded(INVOICES, self.cap, self.now)
        self.used += 1

    def release(self, request: Any) -> None:
        if not _exempt(request):
            self.used -= 1


def _exempt(request: Any) -> bool:
    """The platform's own bills (and their credit notes), sealed by the issuer's system principal: a cap on
    the issuer's plan must never refuse them. They still count among its sealed documents."""
    principal = getattr(request, "principal", None)
    return principal is not None and principal.kind == "api_key" and principal.api_key_id == SYSTEM_KEY_ID


@admission.register
async def invoice_gate(session: AsyncSession, settings: Settings, tenant_id: str) -> _InvoiceGate | None:
    cap = (await quota_cache.caps(session, tenant_id)).get(INVOICES)
    if cap is None:
        return None
    now = utcnow()
    start, end = period_of(now)
    return _InvoiceGate(cap, await invoices_issued(session, tenant_id, start, end), now)


async def used(session: AsyncSession, tenant_id: str, resource: str, start: datetime, end: datetime) -> Decimal:
    """What the tenant used of ``resource`` in the period [start, end): its sealed documents for
    ``invoices_sealed`` (exact, what the seal gate counts), else what the usage service measures
    (``usage_service.period_used``: events net of voids; a gauge's latest level)."""
    if resource == INVOICES:
        return Decimal(await invoices_issued(session, tenant_id, start, end))
    return await usage_service.period_used(session, tenant_id, resource, start.date(), end.date())


async def report(session: AsyncSession, settings: Settings, tenant_id: str) -> dict[str, Any]:
    """``GET /v1/billing/quotas``: each cap of the tenant's plan against this month's use."""
    now = utcnow()
    start, end = period_of(now)
    caps = (await account(session, tenant_id)).quotas  # fresh, not the sealing path's cached caps
    data = []
    for resource, cap in sorted(caps.items()):
        spent = await used(session, tenant_id, resource, start, end)
        data.append({"resource": resource, "cap": decimal_str(cap), "used": decimal_str(spent),
                     "remaining": decimal_str(max(cap - spent, Decimal(0)))})
    return {"period": start.strftime("%Y-%m"), "reset_at": rfc3339(end), "data": data}
