from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from stalela.authority.models import AuthorityAck, AuthorityDevice, InvoiceSync


class AuthorityRepository:
    def __init__(self, session) -> None:  # noqa: ANN001
        self.session = session

    async def insert_pending(self, rows: list[dict]) -> None:
        """New invoices' sync rows, many at once (a Core executemany: the ORM costs more than the rows)."""
        if rows:
            await self.session.execute(insert(InvoiceSync.__table__), rows)

    def _insert(self):  # noqa: ANN202
        return pg_insert if self.session.bind.dialect.name == "postgresql" else sqlite_insert

    async def device(self, outlet_id: str) -> AuthorityDevice | None:
        stmt = select(AuthorityDevice).where(AuthorityDevice.outlet_id == outlet_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def sync_row(self, invoice_id: str, *, lock: bool = False) -> InvoiceSync | None:
        stmt = select(InvoiceSync).where(InvoiceSync.invoice_id == invoice_id)
        if lock:
            stmt = stmt.with_for_update().execution_options(populate_existing=True)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def ensure_sync_row(self, tenant_id: str, invoice_id: str, outlet_id: str, sealed_at: datetime) -> None:
        await self.session.execute(
            self._insert()(InvoiceSync)
            .values(tenant_id=tenant_id, invoice_id=invoice_id, outlet_id=outlet_id, status="pending", attempts=0,
                    sealed_at=sealed_at, updated_at=sealed_at)
            .on_conflict_do_nothing(index_elements=["tenant_id", "invoice_id"]))

    async def ack(self, invoice_id: str) -> AuthorityAck | None:
        stmt = select(AuthorityAck).where(AuthorityAck.invoice_id == invoice_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def sync_views(self, invoice_ids: list[str]) -> dict[str, tuple[InvoiceSync, AuthorityAck | None]]:
        if not invoice_ids:
            return {}
        stmt = (select(InvoiceSync, AuthorityAck)
                .outerjoin(AuthorityAck, (AuthorityAck.tenant_id == InvoiceSync.tenant_id)
                           & (AuthorityAck.invoice_id == InvoiceSync.invoice_id))
                .where(InvoiceSync.invoice_id.in_(invoice_ids)))
        return {s.invoice_id: (s, a) for s, a in await self.session.execute(stmt)}

    async def waiting_invoices(self, outlet_id: str) -> list[str]:
        stmt = select(InvoiceSync.invoice_id).where(InvoiceSync.outlet_id == outlet_id,
                                                    InvoiceSync.status == "pending")
        return list((await self.session.execute(stmt)).scalars())

    async def status_by_outlet(self) -> list[tuple]:
        stmt = (select(
            InvoiceSync.outlet_id,
            func.sum(case((InvoiceSync.status == "pending", 1), else_=0)),
            func.min(case((InvoiceSync.status == "pending", InvoiceSync.sealed_at), else_=None)),
            func.sum(case((InvoiceSync.status == "failed", 1), else_=0)),
            func.sum(case((InvoiceSync.status == "acknowledged", 1), else_=0)),
            func.max(case((InvoiceSync.status == "acknowledged", InvoiceSync.updated_at), else_=None)),
        ).group_by(InvoiceSync.outlet_id))
        return list(await self.session.execute(stmt))
