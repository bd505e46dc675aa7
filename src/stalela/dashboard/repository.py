"""The consoles' own reads: aggregates and lists no other package needed. Every query is bounded by
an index or by the number of outlets, endpoints or tenants, never by the number of invoices."""
from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import and_, case, func, select, tuple_, update
from sqlalchemy.orm import aliased

from stalela.auth.models import User
from stalela.authority.arca.models import ArcaCredential
from stalela.authority.models import AuthorityDevice
from stalela.fiscal.invoices.models import DayFigures, Invoice, InvoiceSync, Series
from stalela.fiscal.invoices.schemas import InvoiceFilters
from stalela.fiscal.ledger.models import ExportJob
from stalela.fiscal.reports.models import ZReport
from stalela.tenancy.models import ApiKey, Outlet, Tenant
from stalela.webhooks.models import WebhookEndpoint, WebhookMessage


# Statuses that are not (yet) an acknowledgement: few rows, read through the (tenant, outlet, status) index.
UNSETTLED = ("pending", "failed", "rejected")
# Receipts a series has sealed: from its first number (1, or above ARCA's last when aligned) to its counter.
_SEALED = Series.counter - Series.first_counter + 1


class DashboardRepository:
    def __init__(self, session) -> None:  # noqa: ANN001
        self.session = session

    async def day_figures_since(self, since: date, outlet_ids: list[str]) -> list[DayFigures]:
        """One row per outlet and business day (the primary key), so 30 days cost 30 rows per outlet."""
        if not outlet_ids:
            return []
        stmt = select(DayFigures).where(DayFigures.outlet_id.in_(outlet_ids), DayFigures.business_day >= since)
        return list((await self.session.execute(stmt.order_by(DayFigures.business_day))).scalars())

    async def latest_z(self, outlet_ids: list[str]) -> dict[str, ZReport]:
        if not outlet_ids:
            return {}
        newest = (select(ZReport.outlet_id, func.max(ZReport.z_counter))
                  .where(ZReport.outlet_id.in_(outlet_ids)).group_by(ZReport.outlet_id))
        stmt = select(ZReport).where(tuple_(ZReport.outlet_id, ZReport.z_counter).in_(newest))
        return {z.outlet_id: z for z in (await self.session.execute(stmt)).scalars()}

    async def sealed_by_outlet(self) -> dict[str, int]:
        """Invoices sealed per outlet: the series counters are gap-free, so they are the count (from the
        first number each series handed out: an Argentine series aligned with ARCA starts above 1)."""
        stmt = select(Series.outlet_id, func.sum(_SEALED)).group_by(Series.outlet_id)
        return {o: int(n or 0) for o, n in await self.session.execute(stmt)}

    async def series(self, outlet_ids: list[str]) -> list[Series]:
        """The outlets' numbering series: one per outlet (DRC), one per receipt type (Argentina)."""
        if not outlet_ids:
            return []
        stmt = select(Series).where(Series.outlet_id.in_(outlet_ids)).order_by(Series.outlet_id, Series.code)
        return list((await self.session.execute(stmt)).scalars())

    async def unsettled_by_type(self, outlet_ids: list[str]) -> dict[tuple[str, str], dict[str, int]]:
        """(outlet, invoice type) → counts of invoices pending, failed or rejected at the authority: the
        indexed small set, as in ``sync_by_outlet`` (acknowledged ones are the rest of the series)."""
        if not outlet_ids:
            return {}
        joined = and_(Invoice.tenant_id == InvoiceSync.tenant_id, Invoice.id == InvoiceSync.invoice_id)
        stmt = (select(InvoiceSync.outlet_id, Invoice.type, InvoiceSync.status, func.count())
                .join(Invoice, joined)
                .where(InvoiceSync.outlet_id.in_(outlet_ids), InvoiceSync.status.in_(UNSETTLED))
                .group_by(InvoiceSync.outlet_id, Invoice.type, InvoiceSync.status))
        out: dict[tuple[str, str], dict[str, int]] = {}
        for outlet_id, type_, status, count in await self.session.execute(stmt):
            out.setdefault((outlet_id, type_), {})[status] = int(count)
        return out

    async def arca_credentials(self) -> ArcaCredential | None:
        return (await self.session.execute(select(ArcaCredential))).scalar_one_or_none()

    async def devices(self) -> dict[str, AuthorityDevice]:
        return {d.outlet_id: d for d in (await self.session.execute(select(AuthorityDevice))).scalars()}

    async def invoices_by_sync(
        self, status: str, filters: InvoiceFilters, *, outlets_only: frozenset[str] | None, limit: int,
        starting_after: str | None,
    ) -> tuple[list[Invoice], bool]:
        """Invoices with an authority status, newest first. Every invoice gets its sync row in the
        sealing transaction, so an inner join loses none, and lets the planner start from the
        (tenant, outlet, status) index when the status is rare (pending, failed)."""
        joined = and_(InvoiceSync.tenant_id == Invoice.tenant_id, InvoiceSync.invoice_id == Invoice.id)
        stmt = select(Invoice).join(InvoiceSync, joined).where(InvoiceSync.status == status)
        if outlets_only is not None:
            stmt = stmt.where(Invoice.outlet_id.in_(sorted(outlets_only)))
        for column, value in ((Invoice.outlet_id, filters.outlet_id), (Invoice.type, filters.type),
                              (Invoice.fiscal_number, filters.fiscal_number)):
            if value:
                stmt = stmt.where(column == value)
        if filters.issued_at_gte:
            stmt = stmt.where(Invoice.issued_at >= filters.issued_at_gte)
        if filters.issued_at_lt:
            stmt = stmt.where(Invoice.issued_at < filters.issued_at_lt)
        if starting_after:
            stmt = stmt.where(Invoice.id < starting_after)
        rows = list((await self.session.execute(stmt.order_by(Invoice.id.desc()).limit(limit + 1))).scalars())
        return rows[:limit], len(rows) > limit

    async def users(self, limit: int = 200) -> list[User]:
        stmt = select(User).order_by(User.status, User.email).limit(limit)
        return list((await self.session.execute(stmt)).scalars())

    async def user(self, user_id: str) -> User | None:
        return (await self.session.execute(select(User).where(User.id == user_id))).scalar_one_or_none()

    async def user_locale(self, user_id: str) -> str | None:
        return (await self.session.execute(select(User.locale).where(User.id == user_id))).scalar_one_or_none()

    async def set_tenant_locale(self, tenant_id: str, locale: str | None) -> None:
        await self.session.execute(update(Tenant).where(Tenant.id == tenant_id).values(locale=locale))

    async def setup_counts(self) -> dict[str, int]:
        """What a new tenant has set up so far (the home page's checklist): each count is bounded by
        ``LIMIT 1``-style existence checks or by the tenant's few outlets, keys and endpoints."""
        def exists(stmt) -> Any:  # noqa: ANN001
            return select(stmt.limit(1).exists())
        checks = {
            "outlets": exists(select(Outlet.id)),
            "devices": exists(select(AuthorityDevice.outlet_id)),
            "arca": exists(select(ArcaCredential.tenant_id).where(ArcaCredential.certificate_pem.is_not(None))),
            "keys": exists(select(ApiKey.id).where(ApiKey.revoked_at.is_(None))),
            "invoices": exists(select(Series.outlet_id).where(Series.counter > 0)),
            "webhooks": exists(select(WebhookEndpoint.id).where(WebhookEndpoint.deleted_at.is_(None))),
        }
        return {name: int(bool((await self.session.execute(stmt)).scalar())) for name, stmt in checks.items()}

    async def credit_notes_of(self, invoice_id: str, fiscal_number: str, credit_types: frozenset[str],
                              limit: int = 100, outlets_only: frozenset[str] | None = None) -> list[Invoice]:
        """The credit notes that cite an invoice (by id for ARCA, by fiscal number for the DGI): read
        through the (tenant, original) index; ``outlets_only``: a restricted viewer's outlets."""
        stmt = (select(Invoice).where(Invoice.original.in_((invoice_id, fiscal_number)),
                                      Invoice.type.in_(sorted(credit_types)))
                .order_by(Invoice.id).limit(limit))
        if outlets_only is not None:
            stmt = stmt.where(Invoice.outlet_id.in_(sorted(outlets_only)))
        return list((await self.session.execute(stmt)).scalars())

    async def invoice_cited(self, original: str, outlets_only: frozenset[str] | None = None) -> Invoice | None:
        """The invoice a credit note cites: its id (ARCA) or its fiscal number (DGI), both unique."""
        stmt = select(Invoice).where((Invoice.id == original) | (Invoice.fiscal_number == original)).limit(1)
        if outlets_only is not None:
            stmt = stmt.where(Invoice.outlet_id.in_(sorted(outlets_only)))
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def first_outlet_zone(self) -> str | None:
        """The zone of the tenant's first outlet (by code): where a page without an outlet tells time."""
        stmt = select(Outlet.timezone).order_by(Outlet.code).limit(1)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def recent_exports(self, limit: int = 10) -> list[ExportJob]:
        stmt = select(ExportJob).order_by(ExportJob.id.desc()).limit(limit)
        return list((await self.session.execute(stmt)).scalars())

    async def sync_by_outlet(self) -> list[tuple]:
        """(tenant, outlet, pending, oldest pending, failed, rejected) over the session's scope.

        Only rows still waiting or failed are read (an indexed, small set): acknowledged ones are
        every sealed invoice minus these, so the cost does not grow with history.
        """
        stmt = (
            select(InvoiceSync.tenant_id, InvoiceSync.outlet_id,
                   func.sum(case((InvoiceSync.status == "pending", 1), else_=0)),
                   func.min(case((InvoiceSync.status == "pending", InvoiceSync.sealed_at), else_=None)),
                   func.sum(case((InvoiceSync.status == "failed", 1), else_=0)),
                   func.sum(case((InvoiceSync.status == "rejected", 1), else_=0)))
            .where(InvoiceSync.status.in_(UNSETTLED))
            .group_by(InvoiceSync.tenant_id, InvoiceSync.outlet_id)
        )
        return list(await self.session.execute(stmt))

    # --- across tenants (operator, platform session) ---------------------------------------------

    async def outlets_everywhere(self) -> dict[tuple[str, str], tuple[str, str, str | None, object]]:
        """(tenant, outlet) → (tenant name, outlet code, device status or None, last acknowledgement).

        The last acknowledgement is that of the newest acknowledged invoice: found by walking the
        primary key (tenant, invoice id) backwards from the newest invoice, which stops at once in a
        healthy outlet, instead of a maximum over every acknowledged row in history.
        """
        synced = aliased(InvoiceSync)
        last_ok = (select(synced.updated_at)
                   .where(synced.tenant_id == Outlet.tenant_id, synced.outlet_id == Outlet.id,
                          synced.status == "acknowledged")
                   .order_by(synced.invoice_id.desc()).limit(1).correlate(Outlet).scalar_subquery())
        stmt = (select(Outlet.tenant_id, Outlet.id, Tenant.name, Outlet.code, AuthorityDevice.status, last_ok)
                .join(Tenant, Tenant.id == Outlet.tenant_id)
                .outerjoin(AuthorityDevice, and_(AuthorityDevice.tenant_id == Outlet.tenant_id,
                                                 AuthorityDevice.outlet_id == Outlet.id)))
        return {(t, o): (name, code, dev, ok) for t, o, name, code, dev, ok in await self.session.execute(stmt)}

    async def tenants(self, limit: int = 500) -> list[tuple[Tenant, int, int]]:
        """Tenants with their outlet count and invoices sealed (the series counters: one row per outlet)."""
        outlets = (select(Outlet.tenant_id, func.count().label("n")).group_by(Outlet.tenant_id)).subquery()
        sealed = (select(Series.tenant_id, func.sum(_SEALED).label("n")).group_by(Series.tenant_id)).subquery()
        stmt = (select(Tenant, func.coalesce(outlets.c.n, 0), func.coalesce(sealed.c.n, 0))
                .outerjoin(outlets, outlets.c.tenant_id == Tenant.id)
                .outerjoin(sealed, sealed.c.tenant_id == Tenant.id)
                .order_by(Tenant.id.desc()).limit(limit))
        return [(t, int(o), int(s)) for t, o, s in await self.session.execute(stmt)]

    async def webhook_endpoints(self, limit: int = 200) -> list[tuple[WebhookEndpoint, str]]:
        stmt = (select(WebhookEndpoint, Tenant.name).join(Tenant, Tenant.id == WebhookEndpoint.tenant_id)
                .where(WebhookEndpoint.deleted_at.is_(None))
                .order_by(WebhookEndpoint.failing_since.is_(None), WebhookEndpoint.id.desc()).limit(limit))
        return list(await self.session.execute(stmt))

    async def webhook_backlog(self) -> dict[tuple[str, str], dict[str, int]]:
        """Pending and failed messages per endpoint (indexed by tenant, endpoint, status)."""
        stmt = (select(WebhookMessage.tenant_id, WebhookMessage.endpoint_id, WebhookMessage.status, func.count())
                .where(WebhookMessage.status.in_(("pending", "failed")))
                .group_by(WebhookMessage.tenant_id, WebhookMessage.endpoint_id, WebhookMessage.status))
        out: dict[tuple[str, str], dict[str, int]] = {}
        for tenant_id, endpoint_id, status, count in await self.session.execute(stmt):
            out.setdefault((tenant_id, endpoint_id), {})[status] = int(count)
        return out

    async def arca_by_tenant(self) -> list[tuple]:
        """Every Argentine tenant: (tenant, credentials or None, sealed, pending, oldest pending, failed,
        rejected). Across tenants: the operator's platform session."""
        sealed = (select(Series.tenant_id, func.sum(_SEALED).label("n")).group_by(Series.tenant_id)).subquery()
        waiting = (select(InvoiceSync.tenant_id,
                          func.sum(case((InvoiceSync.status == "pending", 1), else_=0)).label("pending"),
                          func.min(case((InvoiceSync.status == "pending", InvoiceSync.sealed_at),
                                        else_=None)).label("oldest"),
                          func.sum(case((InvoiceSync.status == "failed", 1), else_=0)).label("failed"),
                          func.sum(case((InvoiceSync.status == "rejected", 1), else_=0)).label("rejected"))
                   .where(InvoiceSync.status.in_(UNSETTLED)).group_by(InvoiceSync.tenant_id)).subquery()
        stmt = (select(Tenant, ArcaCredential, func.coalesce(sealed.c.n, 0), func.coalesce(waiting.c.pending, 0),
                       waiting.c.oldest, func.coalesce(waiting.c.failed, 0), func.coalesce(waiting.c.rejected, 0))
                .outerjoin(ArcaCredential, ArcaCredential.tenant_id == Tenant.id)
                .outerjoin(sealed, sealed.c.tenant_id == Tenant.id)
                .outerjoin(waiting, waiting.c.tenant_id == Tenant.id)
                .where(Tenant.jurisdiction == "AR").order_by(Tenant.name).limit(500))
        return list(await self.session.execute(stmt))
