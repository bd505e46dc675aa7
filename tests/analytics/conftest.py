"""Fixtures for the analytics tests: a shop with a controllable clock (the report tests' own), helpers."""
from __future__ import annotations

import pytest

from stalela.analytics import service
from tests.fiscal.reports.conftest import Clock


@pytest.fixture(autouse=True)
def _no_cached_answers():
    """Each test starts with an empty answer cache (the cache is per process, like in production)."""
    service.cache.clear()
    yield
    service.cache.clear()


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    for module in ("stalela.fiscal.invoices.sealing", "stalela.fiscal.reports.service", "stalela.accounts.service",
                   "stalela.analytics.service"):
        monkeypatch.setattr(f"{module}.utcnow", c)
    return c


@pytest.fixture
async def shop(client, new_tenant, clock):
    """A DRC tenant with two outlets in Kinshasa, opened on 1 October 2026; the clock at noon on 20 November."""
    clock.set("2026-10-01T09:00:00+01:00")
    tenant, headers = await new_tenant("Boutique Lisanga SARL", "A1234567Z")
    outlets = []
    for code, name in (("KIN1", "Gombe"), ("KIN2", "Limete")):
        r = await client.post("/v1/outlets", json={"code": code, "name": name}, headers=headers)
        assert r.status_code == 201, r.text
        outlets.append(r.json())
    clock.set("2026-11-20T12:00:00+01:00")
    return tenant, headers, outlets


async def get(client, headers, path: str, expect: int = 200, **params) -> dict:
    r = await client.get(f"/v1/analytics/{path}", params=params, headers=headers)
    assert r.status_code == expect, r.text
    return r.json()
