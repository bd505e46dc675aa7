"""The tables of offline sealing. The fiscal records themselves (blocks, refusals, voids) are the
ledger's (``fiscal.ledger.models.LedgerEvent``, ``fiscal.invoices.models.NumberBlock``); these are
the devices, their credentials and what came back from them."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKeyConstraint, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from stalela.db.base import Base, UTCDateTime, utcnow
from stalela.tenancy.context import TenantOwned


class DeviceNonce(TenantOwned, Base):
    """A single-use registration challenge, valid 60 s: a device proves it holds its key by signing it."""

    __tablename__ = "device_nonces"

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Device(TenantOwned, Base):
    """A semi-trusted sealing device (the "Fiscal Extension"): its public key, bound to one outlet."""

    __tablename__ = "devices"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "outlet_id"], ["outlets.tenant_id", "outlets.id"]),
        Index("uq_devices_tenant_id_thumbprint", "tenant_id", "thumbprint", unique=True),
    )

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    outlet_id: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(100))
    public_jwk: Mapped[str] = mapped_column(Text)  # core.offline.device_public_jwk, JSON
    thumbprint: Mapped[str] = mapped_column(String(64))  # RFC 7638
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | disabled
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DeviceCredential(TenantOwned, Base):
    """A delegated credential as issued (the compact JWS is kept: it is what verifies offline invoices)."""

    __tablename__ = "device_credentials"
    __table_args__ = (
        Index("uq_device_credentials_tenant_id_status_index", "tenant_id", "status_index", unique=True),
        Index("ix_device_credentials_tenant_id_device_id", "tenant_id", "device_id"),
    )

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    jti: Mapped[str] = mapped_column(String(40), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(40))
    outlet_id: Mapped[str] = mapped_column(String(40))
    series_id: Mapped[str] = mapped_column(String(40))
    block_id: Mapped[str] = mapped_column(String(40))
    status_index: Mapped[int] = mapped_column(Integer)  # its bit in the tenant's status list
    not_before: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    token: Mapped[str] = mapped_column(Text)
    caps: Mapped[str] = mapped_column(Text)  # JSON, as in the claims
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revocation_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)  # requested | fork | equivocation | device_disabled
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OfflineBatch(TenantOwned, Base):
    """A returned batch and the answer it got: the same batch again gets the same answer."""

    __tablename__ = "offline_batches"
    __table_args__ = (
        Index("uq_offline_batches_tenant_id_digest", "tenant_id", "digest", unique=True),
    )

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    credential_jti: Mapped[str] = mapped_column(String(40))
    digest: Mapped[str] = mapped_column(String(64))  # SHA-256 of the canonical request body
    invoices: Mapped[int] = mapped_column(Integer)
    merged: Mapped[int] = mapped_column(Integer)
    refused: Mapped[int] = mapped_column(Integer)
    held: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OfflineReceipt(TenantOwned, Base):
    """One use of a block's number, as decided: merged (an invoice) or refused (a ledger event).
    Unique per (block, number): a second, different invoice at the same number is a fork."""

    __tablename__ = "offline_receipts"
    __table_args__ = (
        Index("uq_offline_receipts_tenant_id_block_id_counter", "tenant_id", "block_id", "counter", unique=True),
    )

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    block_id: Mapped[str] = mapped_column(String(40))
    credential_jti: Mapped[str] = mapped_column(String(40))
    counter: Mapped[int] = mapped_column(BigInteger)
    device_hash: Mapped[str] = mapped_column(String(64))  # the device seal's hash
    seal: Mapped[str] = mapped_column(Text)  # the device's seal as uploaded (JSON): half of a fork proof
    outcome: Mapped[str] = mapped_column(String(16))  # merged | refused
    code: Mapped[str | None] = mapped_column(String(64), nullable=True)  # why refused
    invoice_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    event_id: Mapped[str | None] = mapped_column(String(40), nullable=True)  # the refusal's ledger event
    batch_id: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ForkProof(TenantOwned, Base):
    """Two different device-signed invoices at one number, countersigned by the cloud. Append-only."""

    __tablename__ = "fork_proofs"

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    credential_jti: Mapped[str] = mapped_column(String(40))
    block_id: Mapped[str] = mapped_column(String(40))
    counter: Mapped[int] = mapped_column(BigInteger)
    key_id: Mapped[str] = mapped_column(String(40))
    seal_hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class BlockReturn(TenantOwned, Base):
    """A device-signed ``block_return`` statement, kept beside the ``numbers_voided`` record it caused (which
    holds only its hash): an invoice the device later signs at one of those numbers is equivocation, and the
    statement is half of the proof. Append-only."""

    __tablename__ = "block_returns"
    __table_args__ = (
        Index("uq_block_returns_tenant_id_block_id_statement_hash", "tenant_id", "block_id", "statement_hash",
              unique=True),
    )

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    block_id: Mapped[str] = mapped_column(String(40))
    credential_jti: Mapped[str] = mapped_column(String(40))
    statement_hash: Mapped[str] = mapped_column(String(64))
    statement: Mapped[str] = mapped_column(Text)  # the device's seal over core.offline.return_payload, JSON
    first: Mapped[int] = mapped_column(BigInteger)
    last: Mapped[int] = mapped_column(BigInteger)
    event_id: Mapped[str] = mapped_column(String(40))  # the numbers_voided record
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
