"""The SQL of voids and block views: blocks, their ledger events, their credential. Sessions are bound to a
tenant (the filter is added for us), except the scheduler's scan (``NumberBlockRepository.due_for_void``)."""
from __future__ import annotations

from sqlalchemy import select

from stalela.db.repository import Repository
from stalela.fiscal.invoices.models import NumberBlock
from stalela.fiscal.ledger.models import LedgerEvent
from stalela.offline.models import DeviceCredential


class BlockRepository(Repository[NumberBlock]):
    model = NumberBlock

    async def page_filtered(self, *, device_id: str | None, status: str | None, outlets: set[str] | None,
                            limit: int, starting_after: str | None) -> tuple[list[NumberBlock], bool]:
        """Newest first. ``outlets``: a restricted key's outlets (None: every outlet). A block closes as it
        fills, so the cursor is checked against the list without the status filter (``Repository.page``)."""
        scope = select(NumberBlock)
        if device_id is not None:
            scope = scope.where(NumberBlock.device_id == device_id)
        if outlets is not None:
            scope = scope.where(NumberBlock.outlet_id.in_(sorted(outlets)))
        stmt = scope.where(NumberBlock.status == status) if status is not None else scope
        return await self.page(stmt, limit=limit, starting_after=starting_after, scope=scope)


class BlockEventRepository(Repository[LedgerEvent]):
    model = LedgerEvent

    async def of_block(self, block_id: str) -> list[LedgerEvent]:
        """Every ledger event of a block, in log order (its allocation first)."""
        stmt = select(LedgerEvent).where(LedgerEvent.block_id == block_id).order_by(LedgerEvent.leaf_index)
        return list((await self.session.execute(stmt)).scalars())

    async def by_hash(self, block_id: str, seal_hashes: list[str]) -> list[LedgerEvent]:
        if not seal_hashes:
            return []
        stmt = select(LedgerEvent).where(LedgerEvent.block_id == block_id, LedgerEvent.seal_hash.in_(seal_hashes))
        return list((await self.session.execute(stmt)).scalars())


class CredentialRepository(Repository[DeviceCredential]):
    model = DeviceCredential

    async def by_jti(self, jti: str) -> DeviceCredential | None:
        stmt = select(DeviceCredential).where(DeviceCredential.jti == jti)
        return (await self.session.execute(stmt)).scalar_one_or_none()

