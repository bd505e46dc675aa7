from __future__ import annotations

from sqlalchemy import delete, select

from stalela.authority.arca.models import ArcaCredential, ArcaTicket


class ArcaRepository:
    """The tenant's ARCA rows (the session is bound to the tenant: every statement is filtered)."""

    def __init__(self, session) -> None:  # noqa: ANN001
        self.session = session

    async def credentials(self, *, lock: bool = False) -> ArcaCredential | None:
        stmt = select(ArcaCredential)
        if lock:
            # PostgreSQL: the row lock that lets one process at a time log in to WSAA. SQLite has no row
            # locks, but its write transactions (BEGIN IMMEDIATE) already run one at a time.
            stmt = stmt.with_for_update().execution_options(populate_existing=True)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def ticket(self, service: str, environment: str) -> ArcaTicket | None:
        stmt = select(ArcaTicket).where(ArcaTicket.service == service, ArcaTicket.environment == environment)
        return (await self.session.execute(stmt.execution_options(populate_existing=True))).scalar_one_or_none()

    async def forget_tickets(self, service: str | None = None) -> None:
        stmt = delete(ArcaTicket)
        if service is not None:
            stmt = stmt.where(ArcaTicket.service == service)
        await self.session.execute(stmt.execution_options(synchronize_session=False))

    def add(self, row: ArcaCredential | ArcaTicket) -> None:
        self.session.add(row)
