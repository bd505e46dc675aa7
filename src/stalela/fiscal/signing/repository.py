from __future__ import annotations

from sqlalchemy import select, update

from stalela.db.repository import Repository
from stalela.fiscal.signing.models import SigningKey


class SigningKeyRepository(Repository[SigningKey]):
    model = SigningKey

    async def active(self, tenant_id: str) -> SigningKey | None:
        stmt = select(SigningKey).where(SigningKey.tenant_id == tenant_id, SigningKey.status == "active")
        return (await self.session.execute(stmt.order_by(SigningKey.id.desc()).limit(1))).scalar_one_or_none()

    async def all_keys(self) -> list[SigningKey]:
        return list((await self.session.execute(select(SigningKey).order_by(SigningKey.id))).scalars())

    async def retire_active(self, tenant_id: str, when) -> None:  # noqa: ANN001
        await self.session.execute(
            update(SigningKey)
            .where(SigningKey.tenant_id == tenant_id, SigningKey.status == "active")
            .values(status="retired", not_after=when)
        )
