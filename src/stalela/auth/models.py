from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from stalela.db.base import Base, UTCDateTime, utcnow
from stalela.tenancy.context import TenantOwned


class User(TenantOwned, Base):
    __tablename__ = "users"
    __table_args__ = (Index("uq_users_tenant_id_email", "tenant_id", "email", unique=True),
                      # Login looks users up by email before the tenant is known.
                      Index("ix_users_email", "email"))

    tenant_id: Mapped[str] = mapped_column(String(40), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | deactivated
    password_hash: Mapped[str] = mapped_column(String(255))
    outlet_ids: Mapped[str] = mapped_column(Text, default="[]")  # JSON list: a cashier's outlets
    locale: Mapped[str | None] = mapped_column(String(8), nullable=True)  # None: the tenant's language
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Invitation(TenantOwned, Base):
    __tablename__ = "invitations"
    __table_args__ = (Index("uq_invitations_token_hash", "token_hash", unique=True),)

    tenant_id: Mapped[str] = mapped_column(String(40), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    outlet_ids: Mapped[str] = mapped_column(Text, default="[]")
    token_hash: Mapped[str] = mapped_column(String(64))
    invited_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RefreshToken(TenantOwned, Base):
    """Opaque, stored hashed. A family is one login; presenting a used token revokes the family."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index("uq_refresh_tokens_token_hash", "token_hash", unique=True),
                      Index("ix_refresh_tokens_tenant_id_family_id", "tenant_id", "family_id"))

    tenant_id: Mapped[str] = mapped_column(String(40), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(40))
    family_id: Mapped[str] = mapped_column(String(40))
    token_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AuthKey(Base):
    """Platform-wide RS256 keys that sign access tokens (not tenant data, so no tenant_id)."""

    __tablename__ = "auth_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    public_jwk: Mapped[str] = mapped_column(Text)
    private_key: Mapped[bytes] = mapped_column(LargeBinary)  # PKCS#8, AES-GCM under the master key
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
