"""The API's shapes for block returns (the device-signed statement) and block listings."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from stalela.kit.schemas import StrictModel

BlockStatus = Literal["open", "closed"]


class ReturnStatement(StrictModel):
    """A seal (the same layout as an invoice's) by the credential's ``cnf`` key over
    ``core.offline.return_payload``: ``{"kind": "block_return", "tenant_id", "block_id", "credential",
    "first", "last", "prev_hash", "at"}``."""

    payload: dict[str, Any]
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    signature: str = Field(min_length=1, max_length=200)
    key_id: str = Field(min_length=1, max_length=100)
    algorithm: str = Field(min_length=1, max_length=16)
