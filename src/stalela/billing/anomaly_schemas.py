"""The anomaly API's models. Figures are decimal strings (exact, as stored)."""
from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["open", "acknowledged", "dismissed"]


class AnomalyOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    tenant_id: str
    resource: str
    day: date = Field(description="The UTC day whose usage was anomalous")
    observed: str = Field(description="The day's quantity, in the resource's units")
    baseline: str = Field(description="What was expected: the mean (zscore) or median (mad) of the 28 days before")
    spread: str = Field(description="The spread the score divides by: σ or 1.4826 × MAD, at least the floor")
    score: str = Field(description="(observed − baseline) / spread")
    method: Literal["zscore", "mad"]
    threshold: str = Field(description="The threshold in force: an anomaly scored above it")
    impact_eur: str = Field(description="What the excess over the baseline costs that day at the tenant's rate card")
    status: Status
    status_by: str | None = Field(None, description="Who acknowledged or dismissed it")
    status_at: datetime | None = None
    created_at: datetime
