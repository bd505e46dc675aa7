from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from stalela.db.base import Base, UTCDateTime, utcnow
from stalela.tenancy.context import TenantOwned


class MerkleLog(TenantOwned, Base):
    """Head of a tenant's transparency log: its size and compact range (frontier).

    The frontier (the roots of the perfect subtrees of the size's binary decomposition) is all an
    append needs, so sealing never reads the tree. This row is also the tenant-wide lock that keeps
    leaf order equal to sealing order.
    """

    __tablename__ = "merkle_logs"

    tenant_id: Mapped[str] = mapped_column(String(40), ForeignKey("tenants.id"), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    frontier: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class MerkleNode(TenantOwned, Base):
    """A perfect aligned subtree: covers leaves [idx * 2^level, (idx + 1) * 2^level). Append-only."""

    __tablename__ = "merkle_nodes"

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hash: Mapped[bytes] = mapped_column(LargeBinary)


class Checkpoint(TenantOwned, Base):
    """A signed tree head: sealed exactly like an invoice. Append-only."""

    __tablename__ = "checkpoints"
    __table_args__ = (Index("ix_checkpoints_tenant_id_tree_size", "tenant_id", "tree_size"),)

    tenant_id: Mapped[str] = mapped_column(String(40), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tree_size: Mapped[int] = mapped_column(BigInteger)
    root_hash: Mapped[str] = mapped_column(String(64))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(String(16))  # on_demand | periodic | z_report
    key_id: Mapped[str] = mapped_column(String(40))
    seal_hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
    payload: Mapped[str] = mapped_column(Text)


class LedgerEvent(TenantOwned, Base):
    """A cloud-sealed record in the tenant's Merkle log that is not an invoice: a number block handed to
    a device, an offline invoice refused, numbers voided or un-voided (``core.offline``). Sealed like an
    invoice (payload, hash, signature); its hash is the leaf. Append-only."""

    __tablename__ = "ledger_events"
    __table_args__ = (
        Index("uq_ledger_events_tenant_id_leaf_index", "tenant_id", "leaf_index", unique=True),
        Index("ix_ledger_events_tenant_id_block_id", "tenant_id", "block_id"),
    )

    tenant_id: Mapped[str] = mapped_column(String(40), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    leaf_index: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(24))
    outlet_id: Mapped[str] = mapped_column(String(40))
    series_id: Mapped[str] = mapped_column(String(40))
    block_id: Mapped[str] = mapped_column(String(40))
    key_id: Mapped[str] = mapped_column(String(40))
    seal_hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
    payload: Mapped[str] = mapped_column(Text)  # canonical JSON (RFC 8785) of what was signed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ExportJob(TenantOwned, Base):
    """An audit export requested over the API, built in the background, downloaded when ready."""

    __tablename__ = "export_jobs"
    __table_args__ = (Index("ix_export_jobs_status", "status"),)

    tenant_id: Mapped[str] = mapped_column(String(40), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | running | ready | failed
    date_from: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    date_to: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    file_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    invoices: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
