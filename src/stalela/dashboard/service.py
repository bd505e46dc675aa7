"""What the consoles show, assembled from the domains' services and the report aggregates.

Nothing here scans invoices: the home page reads one figures row per outlet and day (kept by the
sealing transaction), the series counters and the indexed set of invoices still waiting for the
authority. Services take the session and the caller and never commit.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.auth.principal import Principal
from stalela.config import Settings
from stalela.dashboard.charts import DayPoint, daily_chart
from stalela.dashboard.repository import DashboardRepository
from stalela.db.base import utcnow
from stalela.fiscal.core.reports import Figures, local_date
from stalela.fiscal.invoices import service as invoices
from stalela.fiscal.invoices import verification
from stalela.fiscal.invoices.repository import SyncStateRepository
from stalela.fiscal.invoices.schemas import InvoiceFilters
from stalela.fiscal.jurisdictions import get_jurisdiction
from stalela.fiscal.invoices.figures import load
from stalela.fiscal.reports.repository import tenant_outlets
from stalela.outbox import service as outbox
from stalela.tenancy.models import Outlet
from stalela.tenancy.repository import OutletRepository, TenantRepository

CHART_DAYS = 30
SYNC_STATUSES = ("pending", "acknowledged", "failed")


async def visible_outlets(session: AsyncSession, principal: Principal) -> list[Outlet]:
    return [o for o in await tenant_outlets(session) if principal.can_use_outlet(o.id)]


# --- home ----------------------------------------------------------------------------------------


@dataclass
class OutletToday:
    outlet: Outlet
    business_day: date
    figures: Figures
    last_z: Any
    sealed: int
    pending: int
    failed: int
    oldest_pending: datetime | None


@dataclass
class Home:
    currency: str
    outlets: list[OutletToday]
    today: Figures
    sync: dict[str, int]
    chart: Any
    days: list[DayPoint] = field(default_factory=list)

    @property
    def vat_groups(self) -> list[dict[str, Any]]:
        return self.today.net().as_json()["groups"]


async def home(session: AsyncSession, principal: Principal) -> Home:
    repo = DashboardRepository(session)
    tenant = await TenantRepository(session).get(principal.tenant_id)
    currency = get_jurisdiction(tenant.jurisdiction).currency
    outlets = await visible_outlets(session, principal)
    ids = [o.id for o in outlets]
    now = utcnow()
    first_day = min((local_date(now, o.timezone) for o in outlets), default=now.date()) - timedelta(days=CHART_DAYS)
    rows = await repo.day_figures_since(first_day, ids)
    last_z = await repo.latest_z(ids)
    sealed = await repo.sealed_by_outlet()
    waiting = {o: (int(p or 0), oldest, int(f or 0)) for _, o, p, oldest, f in await repo.sync_by_outlet()}

    per_day: dict[date, list[int]] = {}
    by_outlet: dict[str, list] = {}
    for row in rows:
        figures = load(row.figures)
        acc = per_day.setdefault(row.business_day, [0, 0])
        acc[0] += figures.net().total
        acc[1] += figures.invoices
        by_outlet.setdefault(row.outlet_id, []).append((row.business_day, figures))
    today_all = Figures()
    cards = []
    for outlet in outlets:
        today = local_date(now, outlet.timezone)
        # After an early close, sales go to the next business day: "today" is every open day from today on.
        figures = Figures()
        for day, f in by_outlet.get(outlet.id, []):
            if day >= today:
                figures = figures.merge(f)
        today_all = today_all.merge(figures)
        pending, oldest, failed = waiting.get(outlet.id, (0, None, 0))
        cards.append(OutletToday(outlet, today, figures, last_z.get(outlet.id), sealed.get(outlet.id, 0), pending,
                                 failed, oldest))
    total_sealed = sum(c.sealed for c in cards)
    pending, failed = sum(c.pending for c in cards), sum(c.failed for c in cards)
    sync = {"pending": pending, "failed": failed, "acknowledged": max(total_sealed - pending - failed, 0),
            "sealed": total_sealed}
    end = max((local_date(now, o.timezone) for o in outlets), default=now.date())
    points = []
    for i in range(CHART_DAYS - 1, -1, -1):
        day = end - timedelta(days=i)
        turnover, count = per_day.get(day, (0, 0))
        points.append(DayPoint(day, turnover, count))
    return Home(currency, cards, today_all, sync, daily_chart(points, currency), points)


# --- invoices ------------------------------------------------------------------------------------


def day_bounds(day_from: date | None, day_to: date | None) -> tuple[datetime | None, datetime | None]:
    """Inclusive UTC calendar days → the half-open ``issued_at`` window the API filters take."""
    lo = datetime.combine(day_from, datetime.min.time(), tzinfo=timezone.utc) if day_from else None
    hi = datetime.combine(day_to + timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc) if day_to else None
    return lo, hi


async def invoice_page(
    session: AsyncSession, principal: Principal, filters: InvoiceFilters, status: str | None, *, limit: int,
    starting_after: str | None,
) -> tuple[list[dict[str, Any]], bool]:
    if status:
        only = principal.outlet_ids if principal.outlet_id is None else frozenset({principal.outlet_id})
        rows, more = await DashboardRepository(session).invoices_by_sync(
            status, filters, outlets_only=only, limit=limit, starting_after=starting_after)
    else:
        rows, more = await invoices.list_invoices(session, principal, filters, limit=limit,
                                                  starting_after=starting_after)
    syncs = await SyncStateRepository(session).views([r.id for r in rows])
    out = []
    for r in rows:
        payload = json.loads(r.payload)
        out.append({"id": r.id, "fiscal_number": r.fiscal_number, "type": r.type, "outlet_id": r.outlet_id,
                    "issued_at": r.issued_at, "total": payload.get("total"), "currency": payload.get("currency"),
                    "sync": invoices.sync_view(*syncs.get(r.id, (None, None)))})
    return out, more


async def invoice_detail(session: AsyncSession, settings: Settings, principal: Principal,
                         invoice_id: str) -> dict[str, Any]:
    inv = await invoices.get_invoice(session, principal, invoice_id)
    body = invoices.render(inv)
    sync, ack = (await SyncStateRepository(session).views([inv.id])).get(inv.id, (None, None))
    url = invoices.verification_url(settings, inv.id)
    outlet = await OutletRepository(session).get(inv.outlet_id)
    return {"invoice": body, "sync": invoices.sync_view(sync, ack), "ack": ack, "verify_url": f"/verify/{inv.id}",
            "outlet": outlet,
            "public_url": url, "qr_svg": verification.qr_svg(url).decode()}


# --- operations ----------------------------------------------------------------------------------


async def sync_overview(session: AsyncSession) -> list[dict[str, Any]]:
    """Every outlet of every tenant with a device or invoices waiting, worst first."""
    repo = DashboardRepository(session)
    names = await repo.outlets_everywhere()
    now = utcnow()
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for tenant_id, outlet_id, pending, oldest, failed in await repo.sync_by_outlet():
        rows[(tenant_id, outlet_id)] = {"pending": int(pending or 0), "failed": int(failed or 0),
                                        "oldest_seconds": (now - oldest).total_seconds() if oldest else None}
    for key, (_, _, device, last_ok) in names.items():
        if device is not None or last_ok is not None:
            rows.setdefault(key, {"pending": 0, "failed": 0, "oldest_seconds": None})
    out = []
    for (tenant_id, outlet_id), row in rows.items():
        tenant_name, code, device, last_ok = names.get((tenant_id, outlet_id), (tenant_id, outlet_id, None, None))
        out.append({"tenant_id": tenant_id, "tenant": tenant_name, "outlet_id": outlet_id, "outlet": code,
                    "device": device or "none", "last_success": last_ok, **row})
    out.sort(key=lambda r: (-(r["failed"] > 0), -(r["oldest_seconds"] or 0), r["tenant"], r["outlet"]))
    return out


async def webhook_health(session: AsyncSession) -> list[dict[str, Any]]:
    repo = DashboardRepository(session)
    backlog = await repo.webhook_backlog()
    out = []
    for endpoint, tenant_name in await repo.webhook_endpoints():
        counts = backlog.get((endpoint.tenant_id, endpoint.id), {})
        health = ("disabled" if not endpoint.enabled else "failing" if endpoint.failing_since else
                  "backlog" if counts.get("pending", 0) > 100 else "healthy")
        out.append({"tenant": tenant_name, "tenant_id": endpoint.tenant_id, "id": endpoint.id, "url": endpoint.url,
                    "health": health, "disabled_reason": endpoint.disabled_reason,
                    "failing_since": endpoint.failing_since, "pending": counts.get("pending", 0),
                    "failed": counts.get("failed", 0)})
    return out


async def outbox_overview(session: AsyncSession, topic: str | None, starting_after: str | None):
    stats = await outbox.stats(session)
    dead, more = await outbox.dead_letters(session, topic, 50, starting_after)
    return stats, dead, more
