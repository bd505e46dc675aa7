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

from stalela.audit.service import record
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
from stalela.fiscal.jurisdictions import get_jurisdiction, labels
from stalela.fiscal.jurisdictions.ar_data import RECEIPT_TYPES as AR_TYPE_NAMES
from stalela.fiscal.invoices.figures import load
from stalela.errors import ValidationFailed
from stalela.i18n import LANGUAGES, N_, Localizer
from stalela.fiscal.reports.repository import tenant_outlets
from stalela.outbox import service as outbox
from stalela.tenancy.models import Outlet
from stalela.tenancy.repository import OutletRepository, TenantRepository

CHART_DAYS = 30
SYNC_STATUSES = ("pending", "acknowledged", "failed", "rejected")  # rejected: ARCA's Resultado R


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


async def home(session: AsyncSession, principal: Principal, l10n: Localizer | None = None) -> Home:
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
    waiting = {o: (int(p or 0), oldest, int(f or 0) + int(r or 0))
               for _, o, p, oldest, f, r in await repo.sync_by_outlet()}

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
    return Home(currency, cards, today_all, sync, daily_chart(points, currency, l10n), points)


@dataclass
class Step:
    """One item of the first-run checklist: done or not (from the tenant's data), and where to do it."""

    key: str
    label: str  # an English msgid, translated in the template
    href: str
    done: bool


async def onboarding(session: AsyncSession, jurisdiction: str) -> list[Step]:
    """The first-run checklist of the home page, each item's state read from real data."""
    have = await DashboardRepository(session).setup_counts()
    authority = (Step("arca", N_("Upload the ARCA certificate"), "/app/outlets", bool(have["arca"]))
                 if jurisdiction == "AR" else
                 Step("device", N_("Register the DGI device (e-MCF) of an outlet"), "/app/outlets",
                      bool(have["devices"])))
    return [
        Step("outlet", N_("Add an outlet"), "/app/outlets", bool(have["outlets"])),
        authority,
        Step("key", N_("Create an API key for your till or shop"), "/app/keys", bool(have["keys"])),
        Step("invoice", N_("Seal a test invoice"), "/docs#/invoices", bool(have["invoices"])),
        Step("webhook", N_("Add a webhook to hear about sealed invoices"), "/app/webhooks", bool(have["webhooks"])),
    ]


# --- invoices ------------------------------------------------------------------------------------


def day_bounds(day_from: date | None, day_to: date | None) -> tuple[datetime | None, datetime | None]:
    """Inclusive UTC calendar days → the half-open ``issued_at`` window the API filters take."""
    lo = datetime.combine(day_from, datetime.min.time(), tzinfo=timezone.utc) if day_from else None
    hi = datetime.combine(day_to + timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc) if day_to else None
    return lo, hi


def _outlets_only(principal: Principal) -> frozenset[str] | None:
    """The outlets a restricted principal (a till's key, a cashier) may see; None: all of them."""
    return principal.outlet_ids if principal.outlet_id is None else frozenset({principal.outlet_id})


async def invoice_page(
    session: AsyncSession, principal: Principal, filters: InvoiceFilters, status: str | None, *, limit: int,
    starting_after: str | None,
) -> tuple[list[dict[str, Any]], bool]:
    if status:
        only = _outlets_only(principal)
        rows, more = await DashboardRepository(session).invoices_by_sync(
            status, filters, outlets_only=only, limit=limit, starting_after=starting_after)
    else:
        rows, more = await invoices.list_invoices(session, principal, filters, limit=limit,
                                                  starting_after=starting_after)
    syncs = await SyncStateRepository(session).views([r.id for r in rows])
    tenant = await TenantRepository(session).get(principal.tenant_id)
    credit_types = get_jurisdiction(tenant.jurisdiction).credit_note_types
    out = []
    for r in rows:
        payload = json.loads(r.payload)
        out.append({"id": r.id, "fiscal_number": r.fiscal_number, "type": r.type, "outlet_id": r.outlet_id,
                    "issued_at": r.issued_at, "total": payload.get("total"), "currency": payload.get("currency"),
                    "credit": r.type in credit_types,
                    "sync": invoices.sync_view(*syncs.get(r.id, (None, None)))})
    return out, more


async def invoice_detail(session: AsyncSession, settings: Settings, principal: Principal,
                         invoice_id: str) -> dict[str, Any]:
    inv = await invoices.get_invoice(session, principal, invoice_id)
    [body] = await invoices.render_many(session, settings, [inv])
    sync, ack = (await SyncStateRepository(session).views([inv.id])).get(inv.id, (None, None))
    url = invoices.verification_url(settings, inv.id, inv.tenant_id)
    outlet = await OutletRepository(session).get(inv.outlet_id)
    view = invoices.sync_view(sync, ack)
    arca_url = view.get("arca_qr_url")
    repo = DashboardRepository(session)
    jurisdiction = get_jurisdiction(body["seal"]["payload"].get("jurisdiction") or "CD")
    credit = inv.type in jurisdiction.credit_note_types
    # A credit note may come from another outlet than its original: a restricted viewer sees only its own.
    only = _outlets_only(principal)
    cited = await repo.invoice_cited(inv.original, outlets_only=only) if inv.original else None
    notes = [] if credit else await repo.credit_notes_of(inv.id, inv.fiscal_number, jurisdiction.credit_note_types,
                                                         outlets_only=only)
    return {"credit": credit, "original_invoice": cited, "credit_notes": notes,
            "credited": sum(n.total_cents for n in notes),"invoice": body, "sync": view, "ack": ack, "verify_url": f"/verify/{inv.id}?t={inv.tenant_id}",
            "outlet": outlet, "jurisdiction": body["seal"]["payload"].get("jurisdiction"),
            "public_url": url, "qr_svg": verification.qr_svg(url).decode(),
            # RG 4892: ARCA's own QR, once the receipt has its CAE (beside Stalela's).
            "arca_qr_svg": verification.qr_svg(arca_url).decode() if arca_url else None}


# --- outlets -------------------------------------------------------------------------------------


@dataclass
class SeriesView:
    """One numbering series of an outlet and where its receipts stand with the authority."""

    code: str
    name: str
    last_number: int  # the counter: the last number handed out (0: none yet)
    first_counter: int  # 1, or ARCA's last number + 1 when the series was aligned before its first seal
    sealed: int
    pending: int = 0
    failed: int = 0
    rejected: int = 0

    @property
    def aligned(self) -> bool:
        return self.first_counter != 1

    @property
    def acknowledged(self) -> int:
        return max(self.sealed - self.pending - self.failed - self.rejected, 0)


async def outlet_series(session: AsyncSession, outlets: list[Outlet], jurisdiction: str) -> dict[str, list[SeriesView]]:
    """outlet id → its series. An Argentine point of sale numbers each receipt type apart, so this is
    where its numbers and CAE counts per type are shown; the DRC's single series says the same as the
    invoice list. Bounded by the number of series and of unsettled invoices, not by history."""
    repo = DashboardRepository(session)
    ids = [o.id for o in outlets]
    unsettled = await repo.unsettled_by_type(ids)
    out: dict[str, list[SeriesView]] = {}
    for series in await repo.series(ids):
        sealed = series.counter - series.first_counter + 1
        if jurisdiction == "AR" and series.code not in AR_TYPE_NAMES:
            continue  # the outlet's lock row ("main"): Argentine receipts are numbered per type
        counts = unsettled.get((series.outlet_id, series.code), {}) if jurisdiction == "AR" else {
            k: sum(c.get(k, 0) for (o, _), c in unsettled.items() if o == series.outlet_id)
            for k in ("pending", "failed", "rejected")}
        out.setdefault(series.outlet_id, []).append(SeriesView(
            series.code, labels.type_name(jurisdiction, series.code), series.counter, series.first_counter,
            max(sealed, 0), counts.get("pending", 0), counts.get("failed", 0), counts.get("rejected", 0)))
    for views in out.values():
        views.sort(key=lambda v: int(v.code) if v.code.isdigit() else 0)
    return out


async def arca_credentials(session: AsyncSession) -> dict[str, Any] | None:
    """The tenant's ARCA credentials as the API shows them (never the key), or None."""
    row = await DashboardRepository(session).arca_credentials()
    return arca_view(row) if row is not None else None


# --- operations ----------------------------------------------------------------------------------


async def sync_overview(session: AsyncSession) -> list[dict[str, Any]]:
    """Every outlet of every tenant with a device or invoices waiting, worst first."""
    repo = DashboardRepository(session)
    names = await repo.outlets_everywhere()
    now = utcnow()
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for tenant_id, outlet_id, pending, oldest, failed, rejected in await repo.sync_by_outlet():
        # ARCA's rejections count with the DGI's failures: both wait for the merchant, not the authority.
        rows[(tenant_id, outlet_id)] = {"pending": int(pending or 0), "failed": int(failed or 0) + int(rejected or 0),
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


def arca_view(row: Any) -> dict[str, Any]:
    expired = row.not_after is not None and row.not_after <= utcnow()
    return {"environment": row.environment, "cuit": row.cuit, "not_after": row.not_after,
            "status": "awaiting_certificate" if row.certificate_pem is None else "expired" if expired else "active",
            "days_left": (row.not_after - utcnow()).days if row.not_after else None,
            "key": "hsm" if row.key_label else "stored encrypted" if row.key_encrypted else None}


async def arca_overview(session: AsyncSession) -> list[dict[str, Any]]:
    """ARCA sync per Argentine tenant (operator): receipts waiting for their CAE, rejected, the oldest
    pending, and the credentials' environment and certificate expiry; the worst first."""
    now = utcnow()
    out = []
    for tenant, creds, sealed, pending, oldest, failed, rejected in await DashboardRepository(session).arca_by_tenant():
        pending, failed, rejected, sealed = int(pending), int(failed), int(rejected), int(sealed)
        out.append({"tenant_id": tenant.id, "tenant": tenant.name, "cuit": tenant.tax_id,
                    "credentials": arca_view(creds) if creds is not None else None,
                    "pending": pending, "failed": failed, "rejected": rejected,
                    "acknowledged": max(sealed - pending - failed - rejected, 0),
                    "oldest_seconds": (now - oldest).total_seconds() if oldest else None})
    out.sort(key=lambda r: (-(r["rejected"] + r["failed"] > 0), -(r["oldest_seconds"] or 0), r["tenant"]))
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


# --- settings ------------------------------------------------------------------------------------


async def set_tenant_locale(session: AsyncSession, principal: Principal, locale: str | None) -> None:
    """The organisation's default language (``None``: its jurisdiction's). Admins only (the caller checks)."""
    if locale is not None and locale not in LANGUAGES:
        raise ValidationFailed(f"locale: one of {', '.join(LANGUAGES)}", code="invalid_locale", field="locale")
    await DashboardRepository(session).set_tenant_locale(principal.tenant_id, locale)
    await record(session, principal.tenant_id, principal.actor, "tenant.locale_changed", principal.tenant_id,
                 {"locale": locale})
