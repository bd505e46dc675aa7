from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import ConfigDict, Field, computed_field, field_serializer, model_validator

from stalela.accounts.schemas import StrictModel, TenantCreate, TenantOut
from stalela.i18n import LANGUAGES, tenant_language
from stalela.kit.money import decimal_str

Tier = Literal["shared", "dedicated"]
Status = Literal["provisioning", "active", "suspended", "deprovisioning", "deleted"]
Language = Literal["fr", "es", "en"]


def locale_field(what: str) -> object:
    """``locale``: a plain string checked by the service, so that an unknown language is the stable 422
    ``invalid_locale`` naming the field (a Literal would be a generic ``validation_failed``); the
    document still lists the choices."""
    return Field(None, max_length=8, description=what,
                 json_schema_extra={"enum": [*LANGUAGES, None], "examples": ["fr"]})


TENANT_LOCALE = ("The tenant's language: fr, es or en; null (the default) means its jurisdiction's: French for "
                 "CD, Spanish for AR. Its consoles, documents and e-mails use it unless a user chose their own.")


class TenantRegister(TenantCreate):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "Boutique Kin SARL", "tax_id": "A1234567Z", "jurisdiction": "CD", "tier": "shared"},
        {"name": "Comercio del Sur SRL", "tax_id": "30712345671", "jurisdiction": "AR",
         "ar": {"vat_condition": "responsable_inscripto"}, "locale": "en", "tier": "shared"},
        {"name": "Boutique Kin SARL", "tax_id": "A1234567B", "jurisdiction": "CD", "tier": "dedicated",
         "target": "db-b:5432"}]})
    locale: str | None = locale_field(TENANT_LOCALE)
    tier: Tier = Field("shared", description="shared: rows in the shared database (row-level security); "
                                             "dedicated: a PostgreSQL database of its own (SQLite file when embedded)")
    target: str | None = Field(None, min_length=1, max_length=300, pattern=r"^[A-Za-z0-9._:/-]+$",
                               description="dedicated only: the server (host:port, as configured) to place the "
                                           "database on; default: the least used")


class ProvisioningOut(StrictModel):
    step: Literal["registered", "database", "migrated", "seeded", "active"]
    status: Literal["running", "completed", "failed"]
    attempts: int
    error: str | None


class LimitsOut(StrictModel):
    rate_limit_per_second: Decimal | None = Field(description="null: the platform default")
    rate_limit_burst: int | None = Field(description="null: the platform default")

    @field_serializer("rate_limit_per_second")
    def _shortest(self, value: Decimal | None) -> str | None:
        # "2.5" whether it was just written or read back from NUMERIC(10, 3) as 2.500.
        return None if value is None else decimal_str(value)


class RegistryTenantOut(TenantOut):
    """The operator's view of a tenant: where it lives and what it may do."""

    model_config = ConfigDict(from_attributes=True)
    status: Status
    tier: Tier
    server: str | None = Field(None, description="dedicated: the server holding its database (host:port)")
    database: str | None = Field(None, description="dedicated: its database (URL without password)")
    locale: str | None = Field(None, description="The language the operator chose; null: the jurisdiction's")
    limits: LimitsOut | None = None
    provisioning: ProvisioningOut | None = None

    @computed_field(description="The language in effect: `locale`, else the jurisdiction's (fr for CD, es for AR)")
    @property
    def language(self) -> Language:
        return tenant_language(self.locale, self.jurisdiction)  # type: ignore[return-value]

    @model_validator(mode="before")
    @classmethod
    def _from_row(cls, data: object) -> object:
        if isinstance(data, dict):
            return data
        base = TenantOut.model_validate(data).model_dump()
        return {**base, "tier": data.tier, "database": data.placement, "locale": data.locale,
                "limits": {"rate_limit_per_second": data.rate_limit_per_second,
                           "rate_limit_burst": data.rate_limit_burst}}


class TenantRegistered(StrictModel):
    tenant: RegistryTenantOut
    api_key: str | None = Field(description="The tenant's first API key, shown exactly once: null when the answer "
                                            "is a replay of an earlier request with the same Idempotency-Key")
    api_key_id: str | None


class TenantPatch(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"locale": "es"}, {"locale": None},
                                                              {"rate_limit_per_second": "2.5", "rate_limit_burst": 5}]})
    name: str | None = Field(None, min_length=1, max_length=200)
    locale: str | None = locale_field(TENANT_LOCALE + " Null gives the jurisdiction's back.")
    rate_limit_per_second: Decimal | None = Field(None, gt=0, le=100_000, max_digits=9, decimal_places=3,
                                                  description="requests per second per API key or user; "
                                                              "null resets to the platform default")
    rate_limit_burst: int | None = Field(None, ge=1, le=1_000_000, description="bucket size; null resets")

    @model_validator(mode="after")
    def _name_not_null(self) -> "TenantPatch":
        if "name" in self.model_fields_set and self.name is None:
            raise ValueError("name cannot be null (omit it to keep the name)")
        return self


class TenantListFilters(StrictModel):
    status: Status | None = None
    tier: Tier | None = None
    jurisdiction: str | None = Field(None, min_length=2, max_length=8, pattern=r"^[A-Z]{2,8}$")


class MoveRequest(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"to": "dedicated", "target": "db-b:5432"}]})
    to: Tier = Field(description="the tier to move to")
    target: str | None = Field(None, min_length=1, max_length=300, pattern=r"^[A-Za-z0-9._:/-]+$",
                               description="dedicated: the server (host:port) to move to; also moves a "
                                           "dedicated tenant between servers")


class MoveOut(StrictModel):
    id: str
    tenant_id: str
    status: Literal["running", "completed", "failed"]
    step: str
    to: Tier
    source: str | None
    target: str | None
    error: str | None = None
    receipt: dict | None = None
    created_at: datetime
    completed_at: datetime | None = None
