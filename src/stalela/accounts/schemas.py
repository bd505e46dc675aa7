from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, available_timezones

from pydantic import ConfigDict, Field, field_validator, model_validator

from stalela.fiscal.jurisdictions import get_jurisdiction, jurisdiction_codes
from stalela.kit.schemas import StrictModel as _Strict


class StrictModel(_Strict):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


_TIMEZONES = frozenset(available_timezones())


def _check_timezone(value: str) -> str:
    if value not in _TIMEZONES:
        raise ValueError("must be an IANA timezone such as Africa/Kinshasa")
    ZoneInfo(value)
    return value


VatCondition = Literal["responsable_inscripto", "monotributo", "exento"]


class ArTenantIn(StrictModel):
    vat_condition: VatCondition = Field(description="The issuer's IVA condition: responsable_inscripto issues "
                                                    "A and B receipts, monotributo and exento issue C")


class ArTenantOut(StrictModel):
    vat_condition: str | None


class TenantCreate(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    tax_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9./-]+$",
                        description="The seller's tax id: the DRC's NIF, or Argentina's CUIT (11 digits, "
                                    "check digit verified; hyphens allowed)")
    jurisdiction: str = Field("CD", min_length=2, max_length=8, description="CD (DRC) or AR (Argentina)")
    ar: ArTenantIn | None = Field(None, description="Argentina only, and required there")

    @field_validator("jurisdiction")
    @classmethod
    def _known(cls, v: str) -> str:
        try:
            get_jurisdiction(v)
        except KeyError:
            raise ValueError(f"unsupported jurisdiction (supported: {', '.join(sorted(jurisdiction_codes()))})") \
                from None
        return v


class TenantOut(StrictModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    name: str
    tax_id: str
    jurisdiction: str
    status: Literal["provisioning", "active", "suspended", "deprovisioning", "deleted"]
    ar: ArTenantOut | None = None
    created_at: datetime
    updated_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _ar_block(cls, data: object) -> object:
        # From the row: Argentina's settings are shown as their own block, absent elsewhere.
        if not isinstance(data, dict) and getattr(data, "jurisdiction", None) == "AR":
            return {**{name: getattr(data, name) for name in cls.model_fields if name != "ar"},
                    "ar": {"vat_condition": data.vat_condition}}
        return data


# A tenant's API rate limit as the operator sets it (PATCH /v1/tenants/{id}); null: the default.
# The same bounds as accounts.service.set_tenant_limits, which checks them again for other callers.
RateLimitPerSecond = Annotated[Decimal, Field(gt=0, le=100_000, decimal_places=3, description=(
    "Requests per second each API key and user of the tenant may sustain (a decimal string or number, at "
    "most 3 decimals); null: STALELA_RATE_LIMIT_PER_SECOND"))]
RateLimitBurst = Annotated[int, Field(ge=1, le=1_000_000, description=(
    "Requests each API key and user may make at once before the rate applies; null: STALELA_RATE_LIMIT_BURST"))]


class OutletCreate(StrictModel):
    code: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")
    name: str = Field(min_length=1, max_length=200)
    timezone: str | None = Field(None, max_length=64, description="IANA timezone; default: the jurisdiction's "
                                 "(Africa/Kinshasa, America/Argentina/Buenos_Aires)")
    address: str | None = Field(None, max_length=500)
    pos_number: int | None = Field(None, ge=1, le=99998, description="Argentina: the ARCA point of sale "
                                   "(punto de venta) this outlet is; required there, unique per tenant")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        return None if v is None else _check_timezone(v)


class OutletUpdate(StrictModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    timezone: str | None = Field(None, max_length=64)
    address: str | None = Field(None, max_length=500)
    status: Literal["active", "inactive"] | None = None

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        return None if v is None else _check_timezone(v)


class OutletOut(StrictModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    tenant_id: str
    code: str
    name: str
    address: str | None
    timezone: str
    status: str
    pos_number: int | None = Field(None, description="Argentina: the ARCA point of sale; null elsewhere")
    first_business_day: date = Field(description="The earliest business day Z and X reports accept: the outlet's "
                                                 "creation date in its timezone, lowered if a timezone change "
                                                 "moves today before it (days with sales are always accepted)")
    created_at: datetime
    updated_at: datetime


class ApiKeyCreate(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    outlet_id: str | None = Field(None, max_length=40)
    scopes: list[str] | None = Field(None, description="Default: every scope. See docs/security.md.")

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, v: list[str] | None) -> list[str] | None:
        from stalela.auth.permissions import SCOPES

        if v is not None:
            unknown = sorted(set(v) - set(SCOPES))
            if unknown or not v:
                raise ValueError(f"scopes must be a non-empty subset of {sorted(SCOPES)}")
            return sorted(set(v))
        return v


class ApiKeyOut(StrictModel):
    """A key as it is listed: what it may *really* do, not only what it was created with. An outlet
    restriction takes the tenant-wide permissions away whatever the scopes (``auth.permissions``), so a
    till's key created with every scope is shown without ``admin``, ``webhooks`` and ``usage``."""
    model_config = ConfigDict(from_attributes=True)
    id: str
    scopes: list[str] = Field(description="The scopes the key can use: those it was created with and those they "
                                          "imply (invoices:write reads invoices), less those its outlet "
                                          "restriction voids")
    tenant_id: str
    name: str
    prefix: str
    outlet_id: str | None
    outlet_code: str | None = Field(None, description="The code of the outlet the key is restricted to")
    requested_scopes: list[str] = Field(description="The scopes it was created with (every scope but the opt-in "
                                                    "invoices:approve when none were named)")
    permissions: list[str] = Field(description="What its scopes allow this key: the permissions the routes check")
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @model_validator(mode="before")
    @classmethod
    def _effective(cls, data: object) -> object:
        """From the stored key (an ORM row): its JSON scopes decoded (none stored: every scope) and
        narrowed by its outlet restriction, the same rule the routes apply."""
        if isinstance(data, dict):
            return data
        from stalela.auth.permissions import DEFAULT_SCOPES, effective_scopes, key_permissions

        stored = getattr(data, "scopes", None)
        requested = frozenset(json.loads(stored) if isinstance(stored, str) else (stored or DEFAULT_SCOPES))
        restricted = getattr(data, "outlet_id", None) is not None
        fields = ("id", "tenant_id", "name", "prefix", "outlet_id", "created_at", "revoked_at", "last_used_at")
        return {**{f: getattr(data, f) for f in fields}, "outlet_code": None,
                "requested_scopes": sorted(requested), "scopes": effective_scopes(requested, restricted),
                "permissions": sorted(p.value for p in key_permissions(requested, restricted))}

    @classmethod
    def of(cls, key: object, outlet_code: str | None) -> ApiKeyOut:
        return cls.model_validate(key).model_copy(update={"outlet_code": outlet_code})


class ApiKeyCreated(ApiKeyOut):
    api_key: str = Field(description="The secret, shown exactly once.")


class TenantCreated(StrictModel):
    tenant: TenantOut
    api_key: str = Field(description="The tenant's first API key, shown exactly once.")
    api_key_id: str
