from __future__ import annotations

from datetime import date, datetime

from decimal import Decimal

from sqlalchemy import Date, ForeignKey, Index, Integer, LargeBinary, Numeric, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from stalela.db.base import Base, UTCDateTime, utcnow
from stalela.tenancy.context import TenantOwned


class Tenant(Base):
    """The control-plane row of a tenant. Its own ``id`` is the tenant id (RLS keys on it)."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    tax_id: Mapped[str] = mapped_column(String(64))
    jurisdiction: Mapped[str] = mapped_column(String(8))
    # provisioning | active | suspended | deprovisioning | deleted
    status: Mapped[str] = mapped_column(String(20), default="active")
    # shared: rows in the control plane's database; dedicated: in the database ``placement`` names.
    tier: Mapped[str] = mapped_column(String(16), default="shared")
    # The tenant's database URL without its password (the configured template supplies it); None: the
    # control plane's database. Read by the one routing function, tenancy.routing.
    placement: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # Operator-set API rate limit of the tenant's keys and users; None: the settings' defaults.
    rate_limit_per_second: Mapped[Decimal | None] = mapped_column(Numeric(10, 3), nullable=True)
    rate_limit_burst: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Argentina: the issuer's IVA condition (it decides the receipt letters); None elsewhere.
    vat_condition: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # The tenant's default language (fr, es, en); None: its jurisdiction's (stalela.i18n).
    locale: Mapped[str | None] = mapped_column(String(8), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class Outlet(TenantOwned, Base):
    __tablename__ = "outlets"
    __table_args__ = (
        Index("uq_outlets_tenant_id_code", "tenant_id", "code", unique=True),
        Index("uq_outlets_tenant_id_pos_number", "tenant_id", "pos_number", unique=True,
              postgresql_where=text("pos_number IS NOT NULL"), sqlite_where=text("pos_number IS NOT NULL")),
    )

    tenant_id: Mapped[str] = mapped_column(String(40), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(Text, nullable=True)
    timezone: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="active")
    # Argentina: the outlet is ARCA's punto de venta with this number (1..99998); None elsewhere.
    pos_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The earliest business day reports accept. Stored, not derived from created_at and the timezone:
    # the timezone can change, and a derived bound could then move past days that already have sales.
    # Set at creation; a timezone change may only lower it (tenancy.service.update_outlet).
    first_business_day: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class ApiKey(TenantOwned, Base):
    __tablename__ = "api_keys"
    # No foreign key to outlets: keys live in the control plane, a dedicated tenant's outlets in its own
    # database (migration 0024); the service checks the outlet.
    __table_args__ = (
        # Authentication looks keys up by hash before the tenant is known.
        Index("uq_api_keys_key_hash", "key_hash", unique=True),
    )

    tenant_id: Mapped[str] = mapped_column(String(40), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64))
    outlet_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # JSON list of scopes (auth.permissions.SCOPES); NULL for keys made before scopes existed = all.
    scopes: Mapped[str | None] = mapped_column(Text, nullable=True)


class TenantLogo(TenantOwned, Base):
    """The logo printed on the tenant's documents (PNG or JPEG, checked and measured at upload).

    Data plane, not control plane: it moves with the tenant. Not fiscal either: a sealed invoice's
    hash does not cover it, so a new logo replaces the row without rewriting history.
    """

    __tablename__ = "tenant_logos"

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    content_type: Mapped[str] = mapped_column(String(40))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
