"""Helpers of the bill tests: real usage (recorded through the API at a moment of a past period), real
plans and rate cards (the seeded ``default`` in EUR, or a plan priced in CDF), an issuer, a rate."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from stalela.billing import usage_service
from stalela.billing.bill_lines import period_bounds, period_of, previous_period
from stalela.db.base import utcnow
from tests.billing.support import plan_id
from tests.conftest import make_settings

OPS = "/v1/ops/billing"
# The one EUR -> CDF rate of the bill tests: a rate a sealed bill used is immutable, and the databases are
# shared by every test, so every test that converts uses this one.
RATE = "3050.25"
# A plan priced in the issuer's currency: bills without a conversion. Round prices keep amounts readable.
CDF_PRICES = {
    "api_calls": {"unit_price": "250", "per": 1000},        # 0.25 CDF a call
    "network_bytes": {"unit_price": "0.25", "per": 1},
    "storage_bytes": {"unit_price": "1", "per": 1000},      # 1 CDF per 1,000 byte-days
    "cpu_seconds": {"unit_price": "7.20", "per": 3600},
    "invoices_sealed": {"unit_price": "75", "per": 1},
}


@pytest.fixture
def settings(database_url, tmp_path):
    """No API-call metering: its flush would record calls at whatever moment a test set the usage clock to."""
    return make_settings(database_url, tmp_path, usage_metering=False)


def periods() -> tuple[str, str, str]:
    """(two periods ago, the previous period, the current one), relative to now."""
    current = period_of(utcnow())
    return previous_period(current, 2), previous_period(current), current


def at(period: str, day: int = 1, hour: int = 0) -> datetime:
    start = period_bounds(period)[0]
    return datetime(start.year, start.month, day, hour, tzinfo=timezone.utc)


async def use(client, headers, event_id: str, resource: str, quantity: str, when: datetime) -> dict:  # noqa: ANN001
    """Record one event through the API, the server's clock a minute after it (inside the usage window)."""
    with usage_service.clock.use(lambda: when + timedelta(minutes=1)):
        r = await client.post("/v1/usage/events", headers=headers, json={
            "event_id": event_id, "resource": resource, "quantity": quantity, "occurred_at": when.isoformat()})
    assert r.status_code == 201, r.text
    return r.json()


async def void(client, headers, event_id: str) -> None:  # noqa: ANN001
    r = await client.post(f"/v1/usage/events/{event_id}/void", headers=headers, json={"reason": "sent twice"})
    assert r.status_code == 201, r.text


async def cdf_plan(client, operator_headers, *tenant_ids: str, prices: dict = CDF_PRICES) -> str:  # noqa: ANN001
    """A plan priced in CDF (card v1 in force from 2026-01-01), with ``tenant_ids`` on it."""
    pid = plan_id("cdf")
    r = await client.post(f"{OPS}/plans", json={"id": pid, "name": "Kinshasa", "currency": "CDF"},
                          headers=operator_headers)
    assert r.status_code == 201, r.text
    r = await client.post(f"{OPS}/plans/{pid}/rate-cards", json={"effective_from": "2026-01-01", "prices": prices},
                          headers=operator_headers)
    assert r.status_code == 201, r.text
    for tenant_id in tenant_ids:
        r = await client.put(f"{OPS}/tenants/{tenant_id}", json={"plan_id": pid}, headers=operator_headers)
        assert r.status_code == 200, r.text
    return pid


async def eur_rate(client, operator_headers, period: str) -> None:  # noqa: ANN001
    r = await client.put(f"{OPS}/exchange-rates/{period}", json={"currency": "EUR", "rate": RATE},
                         headers=operator_headers)
    assert r.status_code in (200, 201), r.text


async def make_issuer(client, new_tenant, operator_headers) -> tuple[dict, dict, dict]:  # noqa: ANN001
    tenant, headers = await new_tenant("Stalela Platform SA", "P0000001")
    outlet = (await client.post("/v1/outlets", json={"code": "BILL", "name": "Billing"}, headers=headers)).json()
    r = await client.put(f"{OPS}/issuer", json={"tenant_id": tenant["id"], "outlet_id": outlet["id"]},
                         headers=operator_headers)
    assert r.status_code == 200, r.text
    return tenant, headers, outlet
