from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal


@dataclass(frozen=True)
class Principal:
    kind: Literal["operator", "api_key", "user"]
    tenant_id: str | None = None
    api_key_id: str | None = None
    outlet_id: str | None = None  # set when the API key is restricted to one outlet
    tenant_status: str | None = None
    user_id: str | None = None
    role: str | None = None  # users: owner | admin | accountant | cashier | auditor
    scopes: frozenset[str] | None = None  # API keys; None = every scope (keys made before scopes)
    outlet_ids: frozenset[str] | None = None  # cashiers: the outlets they are assigned to
    jurisdiction: str | None = None  # the tenant's, so an invoice can be checked before any database work
    # The tenant's operator-set API rate limit (None: the settings' defaults), read with the tenant so
    # the rate limit costs no query of its own.
    rate_per_second: Decimal | None = None
    rate_burst: int | None = None

    @property
    def is_operator(self) -> bool:
        return self.kind == "operator"

    @property
    def actor(self) -> str:
        """How the audit log names whoever acted."""
        return {"operator": "operator", "api_key": f"api_key:{self.api_key_id}"}.get(self.kind, f"user:{self.user_id}")

    @property
    def platform_actor(self) -> str:
        """How the platform audit log (``audit.platform``) names an operator: ``operator:token`` for the
        static token (automation), ``operator:<id>`` for an operator user."""
        return f"operator:{self.user_id}" if self.user_id else "operator:token"

    def can_use_outlet(self, outlet_id: str) -> bool:
        if self.outlet_id is not None:
            return self.outlet_id == outlet_id
        if self.outlet_ids is not None:
            return outlet_id in self.outlet_ids
        return True

    @property
    def restricted(self) -> bool:
        return self.outlet_id is not None or self.outlet_ids is not None
