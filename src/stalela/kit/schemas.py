"""Base for every API input model: unknown fields are errors, and so are NUL characters.

NUL is refused up front because PostgreSQL cannot store it in text and would fail the request
with a server error deep in the database layer.
"""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, field_validator

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
PathId = Annotated[str, Path(pattern=ID_PATTERN)]


QueryId = Annotated[str | None, Query(pattern=ID_PATTERN)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("NUL characters are not allowed")
        return value
