"""Portability exports: the API's models, and the records of the archive (one model per entity).

The record models are the archive's format: each line of ``data/<entity>.ndjson`` is one record, each
``data/<entity>.csv`` has one column per field (nested values as JSON text), and
``data/schemas/<entity>.schema.json`` is the model's JSON Schema. They are written out field by field
(never an ORM row or an API model dumped whole), so a column added to a table later never reaches
an export unnoticed, and secrets (password hashes, key hashes, webhook secrets) never do at all.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from stalela.kit.schemas import StrictModel

# --- the API ------------------------------------------------------------------------------------


class PrivacySubject(StrictModel):
    """Who the export is about: any of these identifiers (kept encrypted until the export is built)."""

    email: str | None = Field(None, min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    tax_id: str | None = Field(None, min_length=1, max_length=64)
    reference: str | None = Field(None, min_length=1, max_length=100, description="The buyer's reference")


class PrivacyExportCreate(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"scope": "subject", "subject": {"tax_id": "A1234567B"}, "pdfs": True},
    ]})
    scope: Literal["tenant", "subject"] = Field(
        description="tenant: everything the tenant has with us; subject: what concerns one data subject")
    subject: PrivacySubject | None = Field(None, description="Required with scope subject, refused otherwise")
    pdfs: StrictBool = Field(True, description="Each invoice's PDF beside its sealed JSON (data/pdf/<id>.pdf); false "
                                         "for a large tenant: a PDF is re-derivable from the sealed invoice")


class PrivacyExportOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    object: Literal["privacy_export"] = "privacy_export"
    scope: Literal["tenant", "subject"]
    status: Literal["pending", "ready", "failed", "revoked", "expired"]
    created_at: datetime
    completed_at: datetime | None = None
    expires_at: datetime | None = Field(None, description="When the link stops working and the file is deleted")
    download_url: str | None = Field(
        None, description="While ready: a signed link (no credentials needed) valid until expires_at")
    sha256: str | None = Field(None, description="SHA-256 of the .tar.gz")
    size: int | None = Field(None, description="Bytes of the .tar.gz")
    key_id: str | None = Field(None, description="The key that signed the tag manifest (GET /v1/keys/{key_id})")
    counts: dict[str, int] | None = Field(None, description="Records per entity in the archive")
    error: str | None = None


# --- the archive's records ----------------------------------------------------------------------

FORMAT = "stalela-privacy-export"
FORMAT_VERSION = 1


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TenantRecord(Record):
    """The tenant (the controller of the data in this export)."""

    id: str
    name: str
    tax_id: str
    jurisdiction: str
    status: str
    vat_condition: str | None = Field(description="Argentina: the issuer's IVA condition")
    created_at: datetime
    updated_at: datetime


class OutletRecord(Record):
    id: str
    code: str
    name: str
    address: str | None
    timezone: str
    status: str
    pos_number: int | None
    first_business_day: date
    created_at: datetime
    updated_at: datetime


class UserRecord(Record):
    """A user of the dashboard. Never the password hash, nor any token."""

    id: str
    email: str
    name: str
    role: str
    status: str
    outlet_ids: list[str]
    created_at: datetime
    updated_at: datetime


class ApiKeyRecord(Record):
    """An API key's metadata. Never the key, nor its hash: ``prefix`` is what the dashboard shows."""

    id: str
    name: str
    prefix: str
    scopes: list[str] | None = Field(description="null: every scope (keys made before scopes existed)")
    outlet_id: str | None
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class WebhookEndpointRecord(Record):
    """A webhook endpoint's configuration. Never its signing secrets."""

    id: str
    url: str
    description: str | None
    event_types: list[str] | None = Field(description="null: every event")
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None


class AuditEventRecord(Record):
    """An entry of the hash-chained audit log, as ``GET /v1/audit-log`` shows it (its hash checkable)."""

    seq: int
    id: str
    at: str = Field(description="RFC 3339, as hashed")
    actor: str
    action: str
    target: str | None
    details: dict[str, Any]
    ip: str | None
    prev_hash: str
    hash: str


class UsageEventRecord(Record):
    """A usage event as ``GET /v1/usage/events`` lists it: what the tenant's bills are computed from."""

    id: str
    event_id: str
    resource: str
    quantity: str = Field(description="A decimal string in the resource's unit")
    occurred_at: str
    received_at: str
    properties: dict[str, Any] | None
    source: Literal["api", "metering"]
    voided_at: str | None = Field(description="When it was voided (a compensating record), if it was")


class BillRecord(Record):
    """A monthly bill of the platform, as ``GET /v1/billing/invoices/{id}`` shows it (its sealed invoice is
    the issuer's, not this tenant's: ``invoice_id`` names it)."""

    id: str
    period: str
    status: Literal["draft", "sealed", "empty"]
    currency: str
    total: str
    lines: list[dict[str, Any]]
    credit_notes: list[dict[str, Any]]
    invoice_id: str | None
    invoice_currency: str | None
    invoice_total: str | None
    exchange_rate: str | None
    created_at: str
    sealed_at: str | None


class Seal(Record):
    payload: dict[str, Any] = Field(description="The exact object that was signed")
    hash: str = Field(description="Lowercase hex SHA-256 of the RFC 8785 canonical JSON of payload")
    signature: str = Field(description="base64url of the ES256 (r||s) signature over those bytes")
    key_id: str
    algorithm: Literal["ES256"]


class InvoiceRecord(Record):
    """A sealed invoice exactly as ``GET /v1/invoices/{id}`` answers it: the document, its seal and its
    standing with the tax authority. Jurisdictions add blocks of their own (``ar``), kept as they are."""

    model_config = ConfigDict(extra="allow")
    id: str
    outlet_id: str
    fiscal_number: str
    counter: int
    type: str
    issued_at: str
    currency: str
    reference: str | None
    buyer: dict[str, Any] | None
    lines: list[dict[str, Any]]
    totals: dict[str, Any]
    qr: str
    seal: Seal
    sync: dict[str, Any]


class ZReportRecord(Record):
    """A sealed Z report (day close) as ``GET /v1/z-reports/{id}`` answers it."""

    model_config = ConfigDict(extra="allow")
    id: str
    number: str | None
    outlet_id: str
    business_day: str
    qr: str
    seal: Seal


# The archive's entities: file stem -> record model. Order is irrelevant (the archive sorts by path).
ENTITIES: dict[str, type[Record]] = {
    "tenant": TenantRecord,
    "outlets": OutletRecord,
    "users": UserRecord,
    "api_keys": ApiKeyRecord,
    "webhook_endpoints": WebhookEndpointRecord,
    "invoices": InvoiceRecord,
    "z_reports": ZReportRecord,
    "audit_events": AuditEventRecord,
    "usage_events": UsageEventRecord,
    "bills": BillRecord,
}
# What a subject's export holds: the subject's invoices and what the log says about them or about the
# subject as a user, with the tenant (who holds the data) for context.
SUBJECT_ENTITIES = ("tenant", "users", "invoices", "audit_events")


def json_schema(entity: str) -> dict[str, Any]:
    """The JSON Schema (2020-12) of one line of ``data/<entity>.ndjson``."""
    model = ENTITIES[entity]
    schema = model.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://stalela.dev/schemas/{FORMAT}/v{FORMAT_VERSION}/{entity}.schema.json", **schema}
