"""Operator accounts and their console sessions: control-plane tables (no tenant_id, no RLS)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from stalela.db.base import Base, UTCDateTime, utcnow


class OperatorUser(Base):
    """A person who runs the platform. ``platform_admin`` may do everything, ``support`` only reads."""

    __tablename__ = "operator_users"
    __table_args__ = (Index("uq_operator_users_email", "email", unique=True),
                      Index("uq_operator_users_oidc", "oidc_issuer", "oidc_subject", unique=True))

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(254))  # normalised like tenant users' (auth.users.normalize_email)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))  # platform_admin | support
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | deactivated
    # None: signs in through OpenID Connect only.
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    oidc_issuer: Mapped[str | None] = mapped_column(String(500), nullable=True)
    oidc_subject: Mapped[str | None] = mapped_column(String(255), nullable=True)
    locale: Mapped[str | None] = mapped_column(String(8), nullable=True)  # None: the browser's language
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OperatorSession(Base):
    """A signed-in console session: the cookie holds the token, the table its SHA-256, so a session is
    revoked by a row (sign-out, deactivation) and a database leak gives no usable cookie."""

    __tablename__ = "operator_sessions"
    __table_args__ = (Index("uq_operator_sessions_token_hash", "token_hash", unique=True),
                      Index("ix_operator_sessions_operator_id", "operator_id"))

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    operator_id: Mapped[str] = mapped_column(String(40), ForeignKey("operator_users.id"))
    token_hash: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(16))  # password | oidc
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
