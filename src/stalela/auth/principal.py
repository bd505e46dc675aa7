from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Principal:
    kind: Literal["operator", "api_key"]
    tenant_id: str | None = None
    api_key_id: str | None = None
    outlet_id: str | None = None  # set when the API key is restricted to one outlet
    tenant_status: str | None = None

    @property
    def is_operator(self) -> bool:
        return self.kind == "operator"
