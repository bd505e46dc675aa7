from __future__ import annotations

from sqlalchemy import bindparam, select, update

from stalela.db.repository import Repository
from stalela.fiscal.signing.models import SigningKey

# Read by every seal group: built once (see db.repository._by_id).
_ACTIVE = (select(SigningKey).where(SigningKey.tenant_id == bindparam("tenant_id"), SigningKey.status == "active")
           .order_by(SigningKey.id.desc()).limit(1))


class SigningKeyRepository(Repository[SigningKey]):
    model = SigningKey

    async def active(self, tenant_id: str) -> SigningKey | None:
        return (await self.session.execute(_ACTIVE, {"tenant_id": tenant_id})).scalar_one_or_none()

    async def all_keys(self) -> list[SigningKey]:
        return list((await self.session.execute(select(SigningKey).order_by(SigningKey.id))).scalars())

    async def retire_active(self, tenant_id: str, when) -> None:  # noqa: ANN001
        await self.session.execute(
            update(SigningKey)
            .where(SigningKey.tenant_id == tenant_id, SigningKey.status == "active")
            .values(status="retired", not_after=when)
        )
