"""All SQL of portability exports: the export rows, and the snapshot an archive is built from.

The snapshot reads other domains' tables (their ``models``) in pages, in the caller's read transaction:
a service call per row would cost a query per row across a million invoices. Sessions are bound to
the tenant, so every statement is filtered for it (and row-level security holds on PostgreSQL).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update

from stalela.audit.models import AuditEntry
from stalela.auth.models import User
from stalela.billing.bill_models import Bill
from stalela.billing.usage_models import UsageEvent, UsageVoid
from stalela.db.repository import Repository
from stalela.fiscal.invoices.models import Invoice
from stalela.fiscal.reports.models import ZReport
from stalela.privacy.export_models import PrivacyExport
from stalela.tenancy.models import ApiKey, Outlet, Tenant
from stalela.webhooks.models import WebhookEndpoint


class ExportRepository(Repository[PrivacyExport]):
    model = PrivacyExport

    async def get_locked(self, export_id: str) -> PrivacyExport | None:
        stmt = (select(PrivacyExport).where(PrivacyExport.id == export_id).with_for_update()
                .execution_options(populate_existing=True))
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def count_pending(self) -> int:
        stmt = select(func.count()).select_from(PrivacyExport).where(PrivacyExport.status == "pending")
        return int((await self.session.execute(stmt)).scalar_one())

    async def move(self, export_id: str, from_status: str, **values: Any) -> bool:
        """Change the export if it is still ``from_status``: True only for the caller that did."""
        result = await self.session.execute(
            update(PrivacyExport).where(PrivacyExport.id == export_id, PrivacyExport.status == from_status)
            .values(**values).execution_options(synchronize_session=False))
        return result.rowcount == 1

    async def live_ids(self) -> list[str]:
        """Exports of the tenant whose file exists or may soon (pending or ready)."""
        stmt = (select(PrivacyExport.id).where(PrivacyExport.status.in_(("pending", "ready")))
                .order_by(PrivacyExport.id))
        return list((await self.session.execute(stmt)).scalars())

    async def claim_build(self, export_id: str, now: datetime, until: datetime) -> bool:
        """Hold a pending export for a build until ``until``, unless another build holds it now."""
        result = await self.session.execute(
            update(PrivacyExport).where(
                PrivacyExport.id == export_id, PrivacyExport.status == "pending",
                or_(PrivacyExport.build_claimed_until.is_(None), PrivacyExport.build_claimed_until < now))
            .values(build_claimed_until=until).execution_options(synchronize_session=False))
        return result.rowcount == 1

    async def renew_build(self, export_id: str, until: datetime | None) -> None:
        """Extend this build's hold on the export (None: let it go)."""
        await self.session.execute(
            update(PrivacyExport).where(PrivacyExport.id == export_id, PrivacyExport.status == "pending")
            .values(build_claimed_until=until).execution_options(synchronize_session=False))

    async def keep_signature(self, export_id: str, tagmanifest_sha256: str, signature: str, key_id: str) -> None:
        await self.session.execute(
            update(PrivacyExport).where(PrivacyExport.id == export_id)
            .values(tagmanifest_sha256=tagmanifest_sha256, signature=signature, key_id=key_id)
            .execution_options(synchronize_session=False))

    async def due_to_expire(self, now: datetime, limit: int = 500) -> list[tuple[str, str]]:
        """(tenant, export) of ready exports past their expiry, every tenant (a platform session)."""
        stmt = (select(PrivacyExport.tenant_id, PrivacyExport.id)
                .where(PrivacyExport.status == "ready", PrivacyExport.expires_at <= now)
                .order_by(PrivacyExport.expires_at).limit(limit))
        return [(t, i) for t, i in await self.session.execute(stmt)]


class SnapshotRepository:
    """Pages of what a tenant holds, by id (keyset pagination: each page is one index range scan)."""

    def __init__(self, session) -> None:  # noqa: ANN001
        self.session = session

    async def tenant(self, tenant_id: str) -> Tenant:
        return (await self.session.execute(select(Tenant).where(Tenant.id == tenant_id))).scalar_one()

    async def log_size(self) -> int:
        """Invoices sealed so far: leaf indexes below this are in a snapshot taken now."""
        last = (await self.session.execute(select(func.max(Invoice.leaf_index)))).scalar_one_or_none()
        return 0 if last is None else int(last) + 1

    async def _page(self, model: Any, after: str | None, limit: int, *criteria: Any) -> list[Any]:
        stmt = select(model).where(*criteria)
        if after is not None:
            stmt = stmt.where(model.id > after)
        return list((await self.session.execute(stmt.order_by(model.id).limit(limit))).scalars())

    async def outlets(self, after: str | None, limit: int) -> list[Outlet]:
        return await self._page(Outlet, after, limit)

    async def users(self, after: str | None, limit: int, *, email: str | None = None) -> list[User]:
        return await self._page(User, after, limit, *([User.email == email] if email is not None else []))

    async def api_keys(self, after: str | None, limit: int) -> list[ApiKey]:
        return await self._page(ApiKey, after, limit)

    async def webhook_endpoints(self, after: str | None, limit: int) -> list[WebhookEndpoint]:
        return await self._page(WebhookEndpoint, after, limit)

    async def invoices(self, after: str | None, limit: int, *, leaf_bound: int,
                       ids: list[str] | None = None) -> list[Invoice]:
        criteria = [Invoice.leaf_index < leaf_bound]
        if ids is not None:
            criteria.append(Invoice.id.in_(ids))
        return await self._page(Invoice, after, limit, *criteria)

    async def z_reports(self, after: str | None, limit: int, *, created_up_to: datetime) -> list[ZReport]:
        return await self._page(ZReport, after, limit, ZReport.created_at <= created_up_to)

    async def usage_events(self, after: str | None, limit: int, *, received_up_to: datetime) -> list[UsageEvent]:
        return await self._page(UsageEvent, after, limit, UsageEvent.received_at <= received_up_to)

    async def voided_at(self, event_ids: list[str], *, up_to: datetime) -> dict[str, datetime]:
        """When each of these events was voided (by ``up_to``), if it was."""
        stmt = select(UsageVoid.event_id, UsageVoid.voided_at).where(UsageVoid.event_id.in_(event_ids),
                                                                     UsageVoid.voided_at <= up_to)
        return {e: at for e, at in await self.session.execute(stmt)}

    async def bills(self, after: str | None, limit: int) -> list[Bill]:
        return await self._page(Bill, after, limit)

    async def audit_entries(self, after_seq: int, limit: int, *, seq_bound: int) -> list[AuditEntry]:
        stmt = (select(AuditEntry).where(AuditEntry.seq > after_seq, AuditEntry.seq < seq_bound)
                .order_by(AuditEntry.seq).limit(limit))
        return list((await self.session.execute(stmt)).scalars())
