"""Fixtures for the report tests: a shop, a controllable clock, sealing helpers."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tests.support.invoices import sample_invoice


class Clock:
    """Stands in for ``utcnow`` in the sealing pipeline and the report service."""

    def __init__(self) -> None:
        self.now: datetime | None = None

    def __call__(self) -> datetime:
        return self.now or datetime.now(timezone.utc)

    def set(self, moment: str | datetime) -> None:
        self.now = datetime.fromisoformat(moment) if isinstance(moment, str) else moment


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    for module in ("stalela.fiscal.invoices.sealing", "stalela.fiscal.reports.service", "stalela.accounts.service"):
        monkeypatch.setattr(f"{module}.utcnow", c)
    return c


@pytest.fixture
async def shop(client, new_tenant, clock):
    """A tenant and its outlet in Kinshasa (opened on 1 November), at noon local time on the 20th (tests move
    the clock as they need)."""
    clock.set("2026-11-01T09:00:00+01:00")
    tenant, headers = await new_tenant("Boutique Lisanga SARL", "A1234567Z")
    outlet = (await client.post("/v1/outlets", json={"code": "KIN1", "name": "Gombe", "address": "Bd du 30 Juin"},
                                headers=headers)).json()
    clock.set("2026-11-20T12:00:00+01:00")
    return tenant, headers, outlet


async def seal(client, headers, outlet_id, **overrides) -> dict:
    r = await client.post("/v1/invoices", json=sample_invoice(outlet_id, **overrides), headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def close(client, headers, outlet_id, day: str | None = None, expect: int = 201) -> dict:
    body = {"business_day": day} if day else None
    r = await client.post(f"/v1/outlets/{outlet_id}/z-reports", json=body, headers=headers)
    assert r.status_code == expect, r.text
    return r.json()
