"""The SQL of the platform audit log's reads (its appends share ``audit.service.append``)."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.audit.models import PlatformAuditEntry


class PlatformAuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def newest(self, limit: int, before: int | None, action: str | None) -> list[PlatformAuditEntry]:
        """Up to ``limit`` entries older than seq ``before``, newest first."""
        stmt = select(PlatformAuditEntry).order_by(PlatformAuditEntry.seq.desc()).limit(limit)
        if before is not None:
            stmt = stmt.where(PlatformAuditEntry.seq < before)
        if action:
            stmt = stmt.where(PlatformAuditEntry.action == action)
        return list((await self.session.execute(stmt)).scalars())

    async def following(self, seq: int, limit: int) -> list[PlatformAuditEntry]:
        """Up to ``limit`` entries after seq ``seq``, in chain order."""
        stmt = (select(PlatformAuditEntry).where(PlatformAuditEntry.seq > seq)
                .order_by(PlatformAuditEntry.seq).limit(limit))
        return list((await self.session.execute(stmt)).scalars())
