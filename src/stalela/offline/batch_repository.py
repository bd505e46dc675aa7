"""SQL of returned batches, per-number receipts, fork proofs and the return statements they may cite."""
from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select

from stalela.db.repository import Repository
from stalela.fiscal.invoices.models import NumberBlock
from stalela.offline.models import BlockReturn, ForkProof, OfflineBatch, OfflineReceipt


class BatchRepository(Repository[OfflineBatch]):
    model = OfflineBatch

    async def by_digest(self, digest: str) -> OfflineBatch | None:
        stmt = select(OfflineBatch).where(OfflineBatch.digest == digest)
        return (await self.session.execute(stmt)).scalar_one_or_none()


class ReceiptRepository(Repository[OfflineReceipt]):
    model = OfflineReceipt

    async def at(self, block_id: str, counters: list[int]) -> dict[int, OfflineReceipt]:
        """The receipts of these numbers of a block, by number."""
        if not counters:
            return {}
        found: dict[int, OfflineReceipt] = {}
        wanted = sorted(set(counters))
        for start in range(0, len(wanted), 500):  # bounded IN lists
            stmt = select(OfflineReceipt).where(OfflineReceipt.block_id == block_id,
                                                OfflineReceipt.counter.in_(wanted[start:start + 500]))
            found.update({r.counter: r for r in (await self.session.execute(stmt)).scalars()})
        return found

    async def insert_many(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(insert(OfflineReceipt.__table__), rows)

    async def search(self, *, block_id: str | None, outcome: str | None, outlets_only: frozenset[str] | None,
                     limit: int, starting_after: str | None) -> tuple[list[OfflineReceipt], bool]:
        stmt = select(OfflineReceipt)
        if block_id is not None:
            stmt = stmt.where(OfflineReceipt.block_id == block_id)
        if outcome is not None:
            stmt = stmt.where(OfflineReceipt.outcome == outcome)
        if outlets_only is not None:
            # A till's key sees the receipts of its own outlet's blocks only.
            blocks = select(NumberBlock.id).where(NumberBlock.outlet_id.in_(sorted(outlets_only)))
            stmt = stmt.where(OfflineReceipt.block_id.in_(blocks))
        return await self.page(stmt, limit=limit, starting_after=starting_after)


class ForkProofRepository(Repository[ForkProof]):
    model = ForkProof



class BlockReturnRepository(Repository[BlockReturn]):
    model = BlockReturn

    async def covering(self, block_id: str, counter: int) -> BlockReturn | None:
        """The return statement that gave back ``counter`` of a block (a number is returned at most once)."""
        stmt = select(BlockReturn).where(BlockReturn.block_id == block_id, BlockReturn.first <= counter,
                                         BlockReturn.last >= counter)
        return (await self.session.execute(stmt.limit(1))).scalar_one_or_none()
