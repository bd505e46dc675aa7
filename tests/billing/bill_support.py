"""Helpers of the bill tests: usage rated by a stand-in for the usage and rating slices, and an issuer."""
from __future__ import annotations

import hashlib
from decimal import Decimal

from stalela.billing import bill_service
from stalela.billing.bill_lines import Rated, period_of, previous_period
from stalela.db.base import utcnow


class FakeRating:
    """``bill_service._rated_lines`` answering from a dict: {(tenant, period): {resource: (qty, amount)}}."""

    def __init__(self) -> None:
        self.usage: dict[tuple[str, str], dict[str, tuple[str, str]]] = {}
        self.used: set[tuple[str, int]] = set()

    def set(self, tenant_id: str, period: str, **resources: tuple[str, str]) -> None:
        self.usage[(tenant_id, period)] = resources

    async def rated_lines(self, session, tenant_id: str, period: str) -> list[Rated]:  # noqa: ANN001
        out = []
        for resource, (qty, amount) in sorted(self.usage.get((tenant_id, period), {}).items()):
            digest = hashlib.sha256(f"{tenant_id}{period}{resource}{qty}".encode()).hexdigest()
            out.append(Rated(resource, Decimal(qty), Decimal(amount), "CDF", "standard", 1, event_count=3,
                             events_sha256=digest,
                             days=[{"day": f"{period}-01", "quantity": qty, "event_count": 3, "events_digest": digest}]))
        return out

    async def mark_used(self, session, plan_id: str, version: int) -> None:  # noqa: ANN001
        self.used.add((plan_id, version))

    def install(self, monkeypatch) -> "FakeRating":  # noqa: ANN001
        monkeypatch.setattr(bill_service, "_rated_lines", self.rated_lines)
        monkeypatch.setattr(bill_service, "_mark_used", self.mark_used)
        return self


def periods() -> tuple[str, str, str]:
    """(two periods ago, the previous period, the current one), relative to now."""
    current = period_of(utcnow())
    return previous_period(current, 2), previous_period(current), current


async def make_issuer(client, new_tenant, operator_headers) -> tuple[dict, dict, dict]:  # noqa: ANN001
    tenant, headers = await new_tenant("Stalela Platform SA", "P0000001")
    outlet = (await client.post("/v1/outlets", json={"code": "BILL", "name": "Billing"}, headers=headers)).json()
    r = await client.put("/v1/ops/billing/issuer", json={"tenant_id": tenant["id"], "outlet_id": outlet["id"]},
                         headers=operator_headers)
    assert r.status_code == 200, r.text
    return tenant, headers, outlet
