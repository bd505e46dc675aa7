"""Per-tenant wrapping keys, per-subject data keys, and the pseudonymous index that finds a subject.

Nothing here holds a personal value in clear: identifiers are keyed HMACs (``crypto.pseudonym``),
data keys are wrapped by the tenant's key, buyers are AES-GCM ciphertext on the invoice row.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from stalela.db.base import Base, UTCDateTime, utcnow
from stalela.tenancy.context import TenantOwned


class TenantKey(TenantOwned, Base):
    """The key that wraps a tenant's subject keys: in the HSM (label = id) or sealed under the master key.

    Destroying it (offboarding, at the statutory end) makes every subject key of the tenant unreadable
    at once; in every backup too when it lives in the HSM (a software key's sealed copy is in older
    database backups until they expire)."""

    __tablename__ = "privacy_tenant_keys"

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    backend: Mapped[str] = mapped_column(String(16))  # software | pkcs11
    material: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # software: sealed key; None once destroyed
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | destroyed
    destroy_after: Mapped[date | None] = mapped_column(Date, nullable=True)  # offboarding's archive end
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    destroyed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Subject(TenantOwned, Base):
    """One data subject (a buyer) and its data key.

    active → restricted (erasure asked while fiscal retention runs: only auditors read it) →
    shredded (the key is gone; the ciphertext on sealed invoices can never be read again)."""

    __tablename__ = "privacy_subjects"
    __table_args__ = (Index("ix_privacy_subjects_status_retain_until", "status", "retain_until"),)

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    key_id: Mapped[str] = mapped_column(String(40))  # names the data key in receipts, never the key itself
    tenant_key_id: Mapped[str] = mapped_column(String(40))
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # None once shredded
    # The last sealed invoice naming the subject: with the jurisdiction's floor, when it may be shredded.
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    retain_until: Mapped[date | None] = mapped_column(Date, nullable=True)
    # The same person, first known under another subject (sealed once by e-mail, once by tax id): erasure
    # and portability follow it. Its own key stays: it still encrypts its own invoices.
    merged_into: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    restricted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    shredded_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SubjectId(TenantOwned, Base):
    """Finds a subject by an identifier (tax id, e-mail, buyer reference) without storing it."""

    __tablename__ = "privacy_subject_ids"
    __table_args__ = (Index("ix_privacy_subject_ids_tenant_id_subject_id", "tenant_id", "subject_id"),)

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(40))


class ErasedId(TenantOwned, Base):
    """A tombstone: this identifier's subject was erased, so no key is re-created for it by a later
    write (a key store without tombstones cannot tell "erased" from "never seen")."""

    __tablename__ = "privacy_erased_ids"

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Set when a seal said the identifier now belongs to a new customer (``new_subject``): the tombstone stops
    # refusing, and replaying the journal leaves it released.
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
