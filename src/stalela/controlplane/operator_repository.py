"""All SQL of operator accounts and their console sessions."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from stalela.controlplane.operator_models import OperatorSession, OperatorUser
from stalela.db.repository import Repository


class OperatorRepository(Repository[OperatorUser]):
    model = OperatorUser

    async def by_email(self, email: str) -> OperatorUser | None:
        stmt = select(OperatorUser).where(OperatorUser.email == email)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def by_subject(self, issuer: str, subject: str) -> OperatorUser | None:
        stmt = select(OperatorUser).where(OperatorUser.oidc_issuer == issuer, OperatorUser.oidc_subject == subject)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def filtered_page(self, *, role: str | None, status: str | None, limit: int,
                            starting_after: str | None) -> tuple[list[OperatorUser], bool]:
        scope = stmt = select(OperatorUser)
        if role:
            stmt = stmt.where(OperatorUser.role == role)
        if status:
            stmt = stmt.where(OperatorUser.status == status)
        return await self.page(stmt, limit=limit, starting_after=starting_after, scope=scope)


class OperatorSessionRepository(Repository[OperatorSession]):
    model = OperatorSession

    async def live(self, token_hash: str, now: datetime) -> tuple[OperatorSession, OperatorUser] | None:
        """The unexpired, unrevoked session of an active operator with this token hash."""
        stmt = (select(OperatorSession, OperatorUser).join(OperatorUser, OperatorUser.id == OperatorSession.operator_id)
                .where(OperatorSession.token_hash == token_hash, OperatorSession.revoked_at.is_(None),
                       OperatorSession.expires_at > now, OperatorUser.status == "active"))
        row = (await self.session.execute(stmt)).first()
        return (row[0], row[1]) if row else None

    async def revoke(self, *, token_hash: str | None = None, operator_id: str | None = None, now: datetime) -> int:
        stmt = update(OperatorSession).where(OperatorSession.revoked_at.is_(None)).values(revoked_at=now)
        if token_hash is not None:
            stmt = stmt.where(OperatorSession.token_hash == token_hash)
        if operator_id is not None:
            stmt = stmt.where(OperatorSession.operator_id == operator_id)
        return (await self.session.execute(stmt)).rowcount or 0
