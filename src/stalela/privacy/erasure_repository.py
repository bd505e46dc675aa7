"""All SQL of erasure: the requests, and the operational rows an erasure deletes or rewrites.

Tenant filtering comes from the session's binding (``tenancy.context.bind_tenant``)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select, update

from stalela.auth.models import Invitation, RefreshToken, User
from stalela.db.repository import Repository
from stalela.fiscal.ledger.models import MerkleLog
from stalela.fiscal.subjects.models import Subject
from stalela.privacy.erasure_models import ErasureRequest
from stalela.tenancy.models import Tenant


class ErasureRepository(Repository[ErasureRequest]):
    model = ErasureRequest

    async def page_requests(self, limit: int, starting_after: str | None):
        return await self.page(None, limit=limit, starting_after=starting_after)

    async def open_requests(self, limit: int = 500) -> list[ErasureRequest]:
        """Platform scope (operator console): every tenant's open requests, the most urgent first."""
        rows = await self.session.execute(select(ErasureRequest).where(ErasureRequest.status == "pending")
                                          .order_by(ErasureRequest.due_at, ErasureRequest.id).limit(limit))
        return list(rows.scalars())

    async def oldest_open(self) -> datetime | None:
        return (await self.session.execute(select(func.min(ErasureRequest.received_at))
                                           .where(ErasureRequest.status == "pending"))).scalar_one_or_none()


class ErasureTargets:
    """What an erasure touches besides the subject keys (those are ``fiscal.subjects``')."""

    def __init__(self, session) -> None:  # noqa: ANN001
        self.session = session

    async def jurisdiction(self, tenant_id: str) -> str:
        return (await self.session.execute(select(Tenant.jurisdiction).where(Tenant.id == tenant_id))).scalar_one()

    async def subjects(self, ids: set[str]) -> list[Subject]:
        if not ids:
            return []
        rows = await self.session.execute(select(Subject).where(Subject.id.in_(sorted(ids))))
        return list(rows.scalars())

    async def merkle_root(self, tenant_id: str) -> tuple[int, bytes | None]:
        """Read from the database each time (not the session's identity map): before and after are two reads."""
        row = (await self.session.execute(select(MerkleLog.size, MerkleLog.frontier)
                                          .where(MerkleLog.tenant_id == tenant_id))).first()
        return (row[0], row[1]) if row else (0, None)

    # --- users (the operator erases a tenant's user) -------------------------------------------------

    async def user_by_email(self, email: str) -> User | None:
        return (await self.session.execute(select(User).where(User.email == email))).scalar_one_or_none()

    async def user(self, user_id: str) -> User | None:
        return (await self.session.execute(select(User).where(User.id == user_id))).scalar_one_or_none()

    async def erase_user(self, user: User, email: str, name: str, at: datetime) -> None:
        await self.session.execute(delete(Invitation).where(Invitation.email == user.email))
        await self.session.execute(delete(RefreshToken).where(RefreshToken.user_id == user.id))
        await self.session.execute(update(User).where(User.id == user.id).values(
            email=email, name=name, status="deactivated", password_hash="!erased", updated_at=at))
