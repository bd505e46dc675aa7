"""The tenant's transparency log: append in the sealing transaction, signed checkpoints, proofs."""
from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.errors import NotFound, ValidationFailed
from stalela.fiscal.core import merkle
from stalela.fiscal.core.seal import build_seal, canonical_bytes
from stalela.fiscal.ledger.models import Checkpoint
from stalela.fiscal.ledger.repository import CheckpointRepository, MerkleRepository
from stalela.fiscal.signing import registry as keys
from stalela.kit.clock import rfc3339
from stalela.kit.ids import new_id


def _tree(log) -> merkle.CompactRange:  # noqa: ANN001
    tree = merkle.CompactRange.from_bytes(log.frontier) if log.frontier else merkle.CompactRange()
    if tree.size != log.size:  # the two columns are written together; disagreement is corruption
        raise RuntimeError(f"merkle log of tenant {log.tenant_id} is inconsistent: {tree.size} != {log.size}")
    return tree


class LogAppender:
    """The tenant's log head, locked until the transaction ends; leaves are appended in memory and
    the new nodes and the head written once, however many invoices the transaction seals."""

    def __init__(self, session: AsyncSession, log: Any) -> None:
        self.session = session
        self.log = log
        self.tree = _tree(log)
        self.nodes: list[tuple[int, int, bytes]] = []

    @classmethod
    async def open(cls, session: AsyncSession, tenant_id: str) -> "LogAppender":
        return cls(session, await MerkleRepository(session).lock_log(tenant_id))

    def append(self, seal_hash_hex: str) -> int:
        """Add one invoice's seal hash; returns its leaf index."""
        index = self.tree.size
        self.nodes.extend(self.tree.append(merkle.leaf_hash(bytes.fromhex(seal_hash_hex))))
        return index

    async def write(self) -> None:
        if not self.nodes:
            return
        await MerkleRepository(self.session).add_nodes(self.log.tenant_id, self.nodes)
        self.nodes = []
        self.log.size = self.tree.size
        self.log.frontier = self.tree.to_bytes()
        self.log.updated_at = utcnow()


async def create_checkpoint(session: AsyncSession, settings: Settings, tenant_id: str, reason: str) -> Checkpoint:
    log = await MerkleRepository(session).lock_log(tenant_id)
    root = _tree(log).root().hex()
    now = utcnow()
    payload = {"tenant_id": tenant_id, "tree_size": log.size, "root_hash": root, "timestamp": rfc3339(now)}
    key = await keys.active_key(session, tenant_id)
    canonical = canonical_bytes(payload)
    seal = build_seal(payload, await keys.sign(settings, key, canonical), key.id, canonical_payload=canonical)
    checkpoint = Checkpoint(
        tenant_id=tenant_id, id=new_id("chk"), tree_size=log.size, root_hash=root, timestamp=now, reason=reason,
        key_id=key.id, seal_hash=seal["hash"], signature=seal["signature"], payload=canonical.decode(),
    )
    session.add(checkpoint)
    await session.flush()
    return checkpoint


async def checkpoint_if_grown(session: AsyncSession, settings: Settings, tenant_id: str) -> Checkpoint | None:
    """The periodic checkpoint: only when the log grew since the last one (re-checked under the lock)."""
    log = await MerkleRepository(session).lock_log(tenant_id)
    latest = await CheckpointRepository(session).latest()
    if log.size == 0 or (latest is not None and latest.tree_size >= log.size):
        return None
    return await create_checkpoint(session, settings, tenant_id, "periodic")


def render_checkpoint(cp: Checkpoint) -> dict[str, Any]:
    seal = {"payload": json.loads(cp.payload), "hash": cp.seal_hash, "signature": cp.signature,
            "key_id": cp.key_id, "algorithm": "ES256"}
    return {"id": cp.id, "tree_size": cp.tree_size, "root_hash": cp.root_hash,
            "timestamp": seal["payload"]["timestamp"], "reason": cp.reason, "seal": seal}


async def latest_checkpoint(session: AsyncSession) -> Checkpoint:
    cp = await CheckpointRepository(session).latest()
    if cp is None:
        raise NotFound("no checkpoint yet", code="checkpoint_not_found")
    return cp


async def _log_size(session: AsyncSession, tenant_id: str) -> int:
    log = await MerkleRepository(session).read_log(tenant_id)
    return log.size if log else 0


async def inclusion_proof(
    session: AsyncSession, tenant_id: str, leaf_index: int, seal_hash_hex: str, tree_size: int | None
) -> dict[str, Any]:
    size = await _log_size(session, tenant_id)
    tree_size = size if tree_size is None else tree_size
    if not leaf_index < tree_size <= size:
        raise ValidationFailed(
            f"tree_size must be greater than the invoice's leaf index ({leaf_index}) and at most the log size ({size})",
            code="tree_size_out_of_range", field="tree_size")
    wanted = merkle.inclusion_nodes(leaf_index, tree_size) + merkle.root_nodes(tree_size)
    nodes = await MerkleRepository(session).nodes(wanted)
    return {
        "leaf_index": leaf_index,
        "tree_size": tree_size,
        "leaf_hash": merkle.leaf_hash(bytes.fromhex(seal_hash_hex)).hex(),
        "audit_path": [h.hex() for h in merkle.inclusion_proof(leaf_index, tree_size, nodes)],
        "root_hash": merkle.root_from_nodes(tree_size, nodes).hex(),
    }


async def consistency_proof(session: AsyncSession, tenant_id: str, first: int, second: int) -> dict[str, Any]:
    size = await _log_size(session, tenant_id)
    if not 1 <= first <= second <= size:
        raise ValidationFailed(f"need 1 <= first <= second <= log size ({size})",
                               code="tree_size_out_of_range", field="first" if first < 1 or first > second else "second")
    wanted = merkle.consistency_nodes(first, second) + merkle.root_nodes(first) + merkle.root_nodes(second)
    nodes = await MerkleRepository(session).nodes(wanted)
    return {
        "first": first,
        "second": second,
        "first_root": merkle.root_from_nodes(first, nodes).hex(),
        "second_root": merkle.root_from_nodes(second, nodes).hex(),
        "consistency_path": [h.hex() for h in merkle.consistency_proof(first, second, nodes)],
    }
