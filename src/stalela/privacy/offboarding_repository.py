"""All SQL of offboarding: its row, the purge of a tenant's non-fiscal tables, the archive key dates.

The purge names its tables one by one: what is not listed here is kept, so adding a table never
deletes anything by accident (the fiscal tables are kept by law, see docs/privacy-offboarding.md).
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.auth.models import Invitation, RefreshToken, User
from stalela.authority.arca.models import ArcaCredential, ArcaTicket
from stalela.authority.models import AuthorityDevice, AuthorityTally
from stalela.db.base import utcnow
from stalela.fiscal.invoices.models import BuyerTally, IdempotencyRecord, Invoice, SalesTally
from stalela.fiscal.ledger.models import ExportJob, MerkleLog
from stalela.fiscal.subjects.models import TenantKey
from stalela.outbox.models import OutboxEvent
from stalela.privacy.offboarding_models import Offboarding
from stalela.tenancy.models import ApiKey, Tenant, TenantLogo
from stalela.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage

# Children before parents. (table, extra condition): outbox rows still to deliver are kept, among
# them this offboarding's own next step.
PURGED: tuple[tuple[Any, Any], ...] = (
    (ApiKey, None),
    (RefreshToken, None),
    (Invitation, None),
    (User, None),
    (WebhookAttempt, None),
    (WebhookMessage, None),
    (WebhookEndpoint, None),
    (IdempotencyRecord, None),
    (OutboxEvent, OutboxEvent.status == "done"),
    (ArcaTicket, None),
    (ArcaCredential, None),
    (AuthorityDevice, None),
    (TenantLogo, None),  # branding, not fiscal: nothing sealed refers to it
    (SalesTally, None),  # analytics: sums derived from the invoices, which are kept
    (BuyerTally, None),
    (AuthorityTally, None),
)


class OffboardingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, row: Offboarding) -> Offboarding:
        self.session.add(row)
        await self.session.flush()
        return row

    async def of_tenant(self, tenant_id: str) -> Offboarding | None:
        stmt = select(Offboarding).where(Offboarding.tenant_id == tenant_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def recent(self, limit: int = 200) -> list[Offboarding]:
        """Platform scope (operator console): unfinished first, then the latest."""
        stmt = select(Offboarding).order_by((Offboarding.state == "deleted"), Offboarding.created_at.desc()).limit(limit)
        return list((await self.session.execute(stmt)).scalars())

    async def lock(self, tenant_id: str, offboarding_id: str) -> Offboarding | None:
        """The row, locked until the step commits: two workers never run the same step."""
        stmt = (select(Offboarding).where(Offboarding.tenant_id == tenant_id, Offboarding.id == offboarding_id)
                .with_for_update().execution_options(populate_existing=True))
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def tenant_for_update(self, tenant_id: str) -> Tenant | None:
        stmt = select(Tenant).where(Tenant.id == tenant_id).with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    # --- what the purge must clean outside the tables (Redis keys, files) ---------------------------

    async def credential_names(self, tenant_id: str) -> tuple[list[str], list[str], list[str]]:
        """(API key ids, user ids, user e-mails): the names of their rate-limit and throttle keys."""
        keys = (await self.session.execute(select(ApiKey.id).where(ApiKey.tenant_id == tenant_id))).scalars()
        users = (await self.session.execute(select(User.id, User.email).where(User.tenant_id == tenant_id))).all()
        return list(keys), [u for u, _ in users], [e for _, e in users]

    async def other_exports(self, tenant_id: str, keep: str | None) -> list[ExportJob]:
        stmt = select(ExportJob).where(ExportJob.tenant_id == tenant_id)
        if keep:
            stmt = stmt.where(ExportJob.id != keep)
        return list((await self.session.execute(stmt)).scalars())

    async def purge(self, tenant_id: str, keep_export: str | None) -> dict[str, int]:
        counts: dict[str, int] = {}
        for model, condition in PURGED:
            stmt = delete(model).where(model.tenant_id == tenant_id)
            if condition is not None:
                stmt = stmt.where(condition)
            counts[model.__tablename__] = (await self.session.execute(stmt)).rowcount or 0
        stmt = delete(ExportJob).where(ExportJob.tenant_id == tenant_id)
        if keep_export:
            stmt = stmt.where(ExportJob.id != keep_export)
        counts[ExportJob.__tablename__] = (await self.session.execute(stmt)).rowcount or 0
        return counts

    # --- the archive key -------------------------------------------------------------------------

    async def last_invoice_at(self, tenant_id: str) -> datetime | None:
        stmt = select(func.max(Invoice.issued_at)).where(Invoice.tenant_id == tenant_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def schedule_tenant_keys(self, tenant_id: str, destroy_after: date) -> list[str]:
        """Every live tenant key of the tenant becomes an archive key destroyed after ``destroy_after``."""
        stmt = select(TenantKey).where(TenantKey.tenant_id == tenant_id, TenantKey.status == "active")
        keys = list((await self.session.execute(stmt)).scalars())
        for key in keys:
            key.destroy_after = destroy_after
        return sorted(k.id for k in keys)

    async def due_tenant_keys(self, today: date, limit: int = 100) -> list[TenantKey]:
        """Platform-bound: archive keys whose statutory end has passed, across tenants."""
        stmt = (select(TenantKey).where(TenantKey.status == "active", TenantKey.destroy_after.is_not(None),
                                        TenantKey.destroy_after < today)
                .order_by(TenantKey.destroy_after).limit(limit).with_for_update())
        return list((await self.session.execute(stmt)).scalars())

    async def mark_destroyed(self, key: TenantKey) -> None:
        await self.session.execute(
            update(TenantKey).where(TenantKey.tenant_id == key.tenant_id, TenantKey.id == key.id)
            .values(material=None, status="destroyed", destroyed_at=utcnow()))

    async def merkle_head(self, tenant_id: str) -> MerkleLog | None:
        return (await self.session.execute(select(MerkleLog).where(MerkleLog.tenant_id == tenant_id))).scalar_one_or_none()
