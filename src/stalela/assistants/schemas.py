"""The drafting API's request shapes (answers are plain dicts built by the service)."""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import ConfigDict, Field

from stalela.kit.schemas import StrictModel

# Long enough for a dictated order of a few dozen lines; short enough that a request's parse stays ~1 ms.
MAX_TEXT = 2000
SealPolicy = Literal["disabled", "elicitation", "approval"]


class DraftCreate(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"text": "Factura a Kin Marché SARL NIF A1234567Z: 3 sacs de ciment à 25000 FC", "locale": "fr"}]})
    text: str = Field(min_length=1, max_length=MAX_TEXT, description="The request, in Spanish or French")
    locale: Literal["es", "fr"] | None = Field(None, description="The request's language; default: detected")
    provider: Literal["rules", "llm"] = Field(
        "rules", description="rules: the offline rule parser (default); llm: the operator's LLM provider, checked "
        "against the rules (422 draft_provider_unavailable when none is configured)")


class DraftPatch(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"invoice": {
        "outlet_id": "out_01J...", "type": "FV", "lines": [
            {"description": "Ciment", "quantity": "3", "unit_price": "25000", "item_type": "BIE", "tax_group": "B"}]}}]})
    invoice: dict[str, Any] = Field(description="The whole invoice body, as for POST /v1/invoices")


class ApprovalCreate(StrictModel):
    expires_in: int = Field(900, ge=30, le=3600, description="Seconds the approval stays valid (default 15 minutes)")


class SealDraft(StrictModel):
    approval_id: str | None = Field(None, max_length=40, pattern=r"^[A-Za-z0-9_-]{1,40}$",
                                    description="Required for an API key when the seal policy is approval")


class SettingsPatch(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"seal_policy": "approval",
                                                               "confidence_threshold": "0.9"}]})
    seal_policy: SealPolicy | None = None
    confidence_threshold: Decimal | None = Field(None, ge=Decimal("0.85"), le=1, max_digits=5, decimal_places=4,
                                                 description="At least 0.85 (the parser's calibrated floor)")
