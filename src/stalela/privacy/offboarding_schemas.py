"""The offboarding API's models (operator only)."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from stalela.kit.schemas import StrictModel

State = Literal["active", "deprovisioning", "exported", "purged", "deleted"]


class OffboardingCreate(StrictModel):
    mode: Literal["return", "delete"] = Field(
        description="return: the export is handed to the merchant; delete: it is kept only for the receipt's hash "
        "(GDPR Art. 28(3)(g): the processor returns or deletes the controller's data at the end of the service)")


class OffboardingAccepted(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    tenant_id: str
    mode: Literal["return", "delete"]
    state: State


class OffboardingSteps(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requested_at: datetime
    deprovisioned_at: datetime | None = None
    exported_at: datetime | None = None
    purged_at: datetime | None = None
    deleted_at: datetime | None = None


class OffboardingOut(OffboardingAccepted):
    steps: OffboardingSteps
    export_id: str | None = None
    export_sha256: str | None = Field(None, description="SHA-256 of the hand-over export")
    download_url: str | None = Field(None, description="mode return: where the merchant downloads the export")
    purged: dict[str, int] | None = Field(None, description="Rows purged per table")
    archive_key_destroy_after: date | None = Field(
        None, description="The statutory end: the tenant key (and so every buyer's data key) is destroyed after it")
    receipt: dict[str, Any] | None = Field(None, description="Once deleted: the receipt, signed ES256 like a seal")
