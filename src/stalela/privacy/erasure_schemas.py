from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from stalela.kit.schemas import StrictModel
from pydantic import BaseModel, ConfigDict, Field


class Subject(StrictModel):
    email: str | None = Field(None, min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    tax_id: str | None = Field(None, min_length=1, max_length=64)
    reference: str | None = Field(None, min_length=1, max_length=128)


class ErasureCreate(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"subject": {"tax_id": "A1234567B", "email": "client@example.cd"}},
    ]})
    subject: Subject


class UserSubject(StrictModel):
    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")


class UserErasureCreate(StrictModel):
    subject: UserSubject


class ErasureAccepted(BaseModel):
    id: str
    status: Literal["pending", "completed"]


class Restricted(BaseModel):
    category: str
    legal_basis: str
    retain_until: str


class ErasureOut(BaseModel):
    id: str
    kind: Literal["buyer", "user"]
    status: Literal["pending", "completed"]
    received_at: datetime
    due_at: datetime
    completed_at: datetime | None = None
    erased: list[str]
    restricted: list[Restricted]
    receipt: dict[str, Any] | None = None
