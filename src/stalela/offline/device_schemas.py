"""API models of devices and credentials."""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from stalela.kit.schemas import StrictModel


class PublicKey(StrictModel):
    """A P-256 public JWK (members other than these are refused; a private ``d`` especially)."""
    kty: str = Field(examples=["EC"])
    crv: str = Field(examples=["P-256"])
    x: str = Field(min_length=1, max_length=64)
    y: str = Field(min_length=1, max_length=64)
    kid: str | None = Field(None, max_length=64)
    alg: str | None = Field(None, max_length=16)
    use: str | None = Field(None, max_length=8)


class DeviceCreate(StrictModel):
    name: str = Field(min_length=1, max_length=100)
    outlet_id: str = Field(min_length=1, max_length=40)
    public_key: PublicKey
    nonce: str = Field(min_length=1, max_length=64)
    proof: str = Field(min_length=1, max_length=128, description="base64url ES256 signature of the registration message")


class Caps(StrictModel):
    max_invoice_total: Decimal | None = Field(None, gt=0, max_digits=18, decimal_places=2)
    invoice_types: list[str] | None = Field(None, min_length=1, max_length=16)
    tax_groups: list[str] | None = Field(None, min_length=1, max_length=32)


class CredentialCreate(StrictModel):
    block_size: int = Field(500, ge=1, le=100_000, description="How many fiscal numbers the device receives")
    lifetime_hours: float = Field(72, gt=0, le=168, description="At most 7 days (RFC 9345's ceiling)")
    invoice_type: str | None = Field(None, max_length=4, description="The type whose series the block is carved from")
    caps: Caps | None = None


# Reasons a person gives; ``fork`` (a proven double use) and ``device_disabled`` are the cloud's own.
RevocationReason = Literal["requested", "key_compromise", "device_lost", "superseded"]


class CredentialRevoke(StrictModel):
    reason: RevocationReason | None = None


class DeviceOut(BaseModel):
    id: str
    object: str = "device"
    outlet_id: str
    name: str
    public_key: dict[str, Any]
    status: Literal["active", "disabled"]
    created: str


class ChallengeOut(BaseModel):
    object: str = "device_challenge"
    nonce: str
    expires_at: str


class BlockRange(BaseModel):
    first: int
    last: int


class CredentialOut(BaseModel):
    jti: str
    object: str = "credential"
    device_id: str
    outlet_id: str
    block_id: str
    block: BlockRange
    status: Literal["active", "expired", "revoked"]
    status_index: int
    not_before: str
    expires_at: str
    caps: dict[str, Any]
    revoked_at: str | None = None
    revocation_reason: str | None = None
    credential: str | None = Field(None, description="The compact JWS (typ dc+jwt) the device seals under; shown "
                                                     "to administrators only")


class RevokedEntry(BaseModel):
    jti: str
    status_index: int
    revoked_at: str
    reason: str | None


class StatusListOut(BaseModel):
    """A tenant's revoked credentials as plain JSON (the signed Bitstring Status List says the same)."""
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "object": "status_list", "tenant_id": "ten_01JF7Q2M4S", "updated_at": "2026-12-07T11:30:00.000Z",
        "revoked": [{"jti": "dcr_01JF7Q9X2B", "status_index": 4, "revoked_at": "2026-12-07T11:30:00.000Z",
                     "reason": "device_lost"}]}]})

    object: str = "status_list"
    tenant_id: str
    updated_at: str | None
    revoked: list[RevokedEntry]
