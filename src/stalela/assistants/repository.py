"""The SQL of drafting. Sessions are bound to the tenant (the filter is added for us)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from stalela.assistants.models import AssistantSettings, DraftApproval, InvoiceDraft
from stalela.db.repository import Repository
from stalela.fiscal.invoices.models import Invoice
from stalela.tenancy.models import Outlet

# How many recent invoices lend their buyers to the fuzzy match: enough for a shop's regulars, bounded so a
# draft never reads a tenant's whole history.
RECENT_INVOICES = 200


class DraftRepository(Repository[InvoiceDraft]):
    model = InvoiceDraft

    async def locked(self, draft_id: str) -> InvoiceDraft | None:
        """The draft, locked until the transaction ends: its seal happens once (PostgreSQL; SQLite's
        writers are serial already)."""
        stmt = (select(InvoiceDraft).where(InvoiceDraft.id == draft_id).with_for_update()
                .execution_options(populate_existing=True))
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def page_filtered(self, *, status: str | None, outlets: frozenset[str] | None, limit: int,
                            starting_after: str | None) -> tuple[list[InvoiceDraft], bool]:
        """``outlets``: only the drafts of these outlets (an outlet-restricted caller); None: all of them."""
        scope = select(InvoiceDraft)
        if outlets is not None:
            scope = scope.where(InvoiceDraft.outlet_id.in_(sorted(outlets)))
        stmt = scope.where(InvoiceDraft.status == status) if status else scope
        return await self.page(stmt, limit=limit, starting_after=starting_after, scope=scope)


class ApprovalRepository(Repository[DraftApproval]):
    model = DraftApproval

    async def use(self, approval_id: str, draft_id: str, content_hash: str, now: datetime) -> bool:
        """Use the approval up, atomically: only an unused, unexpired one for this draft at this hash."""
        stmt = (update(DraftApproval)
                .where(DraftApproval.id == approval_id, DraftApproval.draft_id == draft_id,
                       DraftApproval.content_hash == content_hash, DraftApproval.used_at.is_(None),
                       DraftApproval.expires_at > now)
                .values(used_at=now).execution_options(synchronize_session=False))
        return (await self.session.execute(stmt)).rowcount == 1


class SettingsRepository(Repository[AssistantSettings]):
    model = AssistantSettings

    async def of_tenant(self, *, lock: bool = False) -> AssistantSettings | None:
        stmt = select(AssistantSettings)
        stmt = stmt.with_for_update().execution_options(populate_existing=True) if lock else stmt
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def ensure(self, row: AssistantSettings) -> None:
        """Insert the tenant's settings row unless it exists: two first PATCHes at once both get here, and the
        second must find the first's row, not fail on its primary key."""
        values = {c.key: getattr(row, c.key) for c in AssistantSettings.__table__.columns}
        dialect = self.session.bind.dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        await self.session.execute(insert(AssistantSettings).values(**values)
                                   .on_conflict_do_nothing(index_elements=["tenant_id"]))


class ContextRepository:
    """What the parser may know of the tenant: its outlets and its recent invoices (their buyers)."""

    def __init__(self, session) -> None:  # noqa: ANN001
        self.session = session

    async def active_outlets(self) -> list[Outlet]:
        stmt = select(Outlet).where(Outlet.status == "active").order_by(Outlet.created_at, Outlet.id)
        return list((await self.session.execute(stmt)).scalars())

    async def recent_invoices(self, outlets: frozenset[str] | None,
                              limit: int = RECENT_INVOICES) -> list[Invoice]:
        """``outlets``: only these outlets' invoices (an outlet-restricted caller reads no other's buyers)."""
        stmt = select(Invoice)
        stmt = stmt.where(Invoice.outlet_id.in_(sorted(outlets))) if outlets is not None else stmt
        stmt = stmt.order_by(Invoice.id.desc()).limit(limit)
        return list((await self.session.execute(stmt)).scalars())
