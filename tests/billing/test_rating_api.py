"""Plans and versioned rate cards through the operator API; what the bills and anomalies read."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from stalela.billing import rating, rating_service, resources
from stalela.tenancy.context import bind_tenant
from tests.billing.support import PRICES, plan_id

OPS = "/v1/ops/billing"


async def _plan(client, operator_headers, **extra) -> str:
    pid = plan_id()
    r = await client.post(f"{OPS}/plans", json={"id": pid, "name": "Pro", **extra}, headers=operator_headers)
    assert r.status_code == 201, r.text
    return pid


async def _card(client, operator_headers, pid, effective_from, prices=PRICES):
    return await client.post(f"{OPS}/plans/{pid}/rate-cards", json={"effective_from": effective_from, "prices": prices},
                             headers=operator_headers)


async def test_default_plan_is_seeded(client, operator_headers, new_tenant):
    plan = (await client.get(f"{OPS}/plans/default", headers=operator_headers)).json()
    assert plan["currency"] == "EUR" and plan["quotas"] == {}
    card = (await client.get(f"{OPS}/plans/default/rate-cards/1", headers=operator_headers)).json()
    assert card["effective_from"] == "2026-01-01"
    assert set(card["prices"]) == set(resources.BUILTIN)
    assert card["prices"]["api_calls"] == {"free": "100000", "per": "1000", "unit_price": "0.1"}
    tenant, _ = await new_tenant("Defaulted", "DF1")
    account = (await client.get(f"{OPS}/tenants/{tenant['id']}", headers=operator_headers)).json()
    assert account["plan_id"] == "default" and account["anomaly_threshold"] is None


async def test_plan_lifecycle(client, operator_headers):
    pid = await _plan(client, operator_headers, quotas={"invoices_sealed": 1000})
    r = await client.post(f"{OPS}/plans", json={"id": pid, "name": "again"}, headers=operator_headers)
    assert r.status_code == 409 and r.json()["code"] == "plan_exists"
    listed = (await client.get(f"{OPS}/plans", headers=operator_headers)).json()["data"]
    assert {"default", pid} <= {p["id"] for p in listed}
    r = await client.patch(f"{OPS}/plans/{pid}", json={"name": "Pro+", "quotas": {"api_calls": "5000000"}},
                           headers=operator_headers)
    assert r.status_code == 200 and r.json()["name"] == "Pro+" and r.json()["quotas"] == {"api_calls": "5000000"}
    r = await client.patch(f"{OPS}/plans/{pid}", json={"quotas": None}, headers=operator_headers)
    assert r.json()["quotas"] == {} and r.json()["name"] == "Pro+"
    r = await client.patch(f"{OPS}/plans/{pid}", json={"currency": "USD"}, headers=operator_headers)
    assert r.status_code == 422
    assert (await client.get(f"{OPS}/plans/nope-{pid}", headers=operator_headers)).status_code == 404


async def test_validation(client, operator_headers):
    r = await client.post(f"{OPS}/plans", json={"id": plan_id(), "name": "x", "quotas": {"gpu_hours": 3}},
                          headers=operator_headers)
    assert r.status_code == 422 and r.json()["code"] == "unknown_resource" and r.json()["field"] == "quotas.gpu_hours"
    assert (await client.post(f"{OPS}/plans", json={"id": "Bad Id", "name": "x"}, headers=operator_headers)).status_code == 422
    pid = await _plan(client, operator_headers)
    r = await _card(client, operator_headers, pid, "2026-01-01", {"teleportation": {"unit_price": "1"}})
    assert r.status_code == 422 and r.json()["code"] == "unknown_resource"
    r = await _card(client, operator_headers, pid, "2026-01-01", {"api_calls": {"unit_price": "0.123456789"}})
    assert r.status_code == 422 and r.json()["field"].startswith("prices.api_calls")
    r = await _card(client, operator_headers, pid, "2026-01-01",
                    {"api_calls": {"tiers": [{"up_to": 10, "unit_price": "1"}, {"up_to": 5, "unit_price": "1"},
                                             {"up_to": None, "unit_price": "1"}]}})
    assert r.status_code == 422
    r = await _card(client, operator_headers, pid, "2026-01-01", {})
    assert r.status_code == 422


async def test_versions_are_numbered_and_only_move_forward(client, operator_headers):
    pid = await _plan(client, operator_headers)
    first = await _card(client, operator_headers, pid, "2026-01-01")
    assert first.status_code == 201 and first.json()["version"] == 1 and first.json()["used_at"] is None
    assert first.json()["prices"]["invoices_sealed"]["per"] == "1"
    for day in ("2026-01-01", "2025-12-31"):
        r = await _card(client, operator_headers, pid, day)
        assert r.status_code == 409 and r.json()["code"] == "rate_card_not_after_latest", r.text
    second = await _card(client, operator_headers, pid, "2026-03-01", {"api_calls": {"unit_price": "0.08"}})
    assert second.json()["version"] == 2
    cards = (await client.get(f"{OPS}/plans/{pid}/rate-cards", headers=operator_headers)).json()["data"]
    assert [c["version"] for c in cards] == [1, 2]
    assert (await client.get(f"{OPS}/plans/{pid}/rate-cards/9", headers=operator_headers)).status_code == 404
    # Only the latest, unused version may be withdrawn.
    r = await client.delete(f"{OPS}/plans/{pid}/rate-cards/1", headers=operator_headers)
    assert r.status_code == 409 and r.json()["code"] == "rate_card_not_latest"
    assert (await client.delete(f"{OPS}/plans/{pid}/rate-cards/2", headers=operator_headers)).status_code == 204
    assert (await _card(client, operator_headers, pid, "2026-02-01")).json()["version"] == 2


async def test_card_for_picks_the_version_in_force_and_used_cards_are_immutable(client, operator_headers, new_tenant, db):
    pid = await _plan(client, operator_headers, currency="USD")
    await _card(client, operator_headers, pid, "2026-01-01")
    await _card(client, operator_headers, pid, "2026-02-15", {"api_calls": {"unit_price": "0.05", "per": 1000}})
    tenant, _ = await new_tenant("Carded", "CR1")
    r = await client.put(f"{OPS}/tenants/{tenant['id']}", json={"plan_id": pid, "anomaly_threshold": "3.5",
                                                                "anomaly_method": "mad"}, headers=operator_headers)
    assert r.status_code == 200 and r.json()["anomaly_threshold"] == "3.5", r.text
    async with db.transaction() as session:
        await bind_tenant(session, tenant["id"])
        jan = await rating_service.card_for(session, tenant["id"], date(2026, 2, 14))
        feb = await rating_service.card_for(session, tenant["id"], date(2026, 2, 15))
        account = await rating_service.account(session, tenant["id"])
    assert (jan.plan_id, jan.version, jan.currency, jan.effective_from) == (pid, 1, "USD", date(2026, 1, 1))
    assert feb.version == 2 and set(feb.prices) == {"api_calls"}
    assert rating.cost_line(feb, "api_calls", Decimal(10_000)).amount == Decimal("0.50")
    assert account.plan_id == pid and account.anomaly_threshold == Decimal("3.5") and account.anomaly_method == "mad"
    async with db.transaction() as session:
        await bind_tenant(session, tenant["id"])
        try:
            await rating_service.card_for(session, tenant["id"], date(2025, 12, 31))
        except Exception as exc:
            assert getattr(exc, "code", None) == "rate_card_not_in_force"
        else:
            raise AssertionError("no card was in force")
        await rating_service.mark_used(session, pid, 2)
        await rating_service.mark_used(session, pid, 2)  # idempotent: the first use is kept
    card = (await client.get(f"{OPS}/plans/{pid}/rate-cards/2", headers=operator_headers)).json()
    assert card["used_at"] is not None
    r = await client.delete(f"{OPS}/plans/{pid}/rate-cards/2", headers=operator_headers)
    assert r.status_code == 409 and r.json()["code"] == "rate_card_immutable"
    # A new version may not take effect on a day a bill may already have priced.
    r = await _card(client, operator_headers, pid, card["used_at"][:10])
    assert r.status_code == 409 and r.json()["code"] in ("rate_card_in_use", "rate_card_not_after_latest")
    assert card == (await client.get(f"{OPS}/plans/{pid}/rate-cards/2", headers=operator_headers)).json()


async def test_assign_refuses_unknowns(client, operator_headers, new_tenant):
    tenant, _ = await new_tenant("Assigned", "AS1")
    r = await client.put(f"{OPS}/tenants/{tenant['id']}", json={"plan_id": "no-such-plan"}, headers=operator_headers)
    assert r.status_code == 422 and r.json()["code"] == "plan_not_found"
    r = await client.put(f"{OPS}/tenants/ten_nobody", json={"plan_id": "default"}, headers=operator_headers)
    assert r.status_code == 404
    r = await client.put(f"{OPS}/tenants/{tenant['id']}", json={"plan_id": "default", "anomaly_method": "magic"},
                         headers=operator_headers)
    assert r.status_code == 422
    r = await client.put(f"{OPS}/tenants/{tenant['id']}", json={"plan_id": "default", "anomaly_threshold": "0"},
                         headers=operator_headers)
    assert r.status_code == 422


async def test_ops_api_wants_the_operator(client, new_tenant, app):
    tenant, headers = await new_tenant("Nosy", "NS1")
    calls = [("GET", f"{OPS}/plans", None), ("POST", f"{OPS}/plans", {"id": plan_id(), "name": "x"}),
             ("GET", f"{OPS}/plans/default", None), ("PATCH", f"{OPS}/plans/default", {"name": "mine"}),
             ("POST", f"{OPS}/plans/default/rate-cards", {"effective_from": "2030-01-01", "prices": PRICES}),
             ("GET", f"{OPS}/plans/default/rate-cards", None), ("GET", f"{OPS}/plans/default/rate-cards/1", None),
             ("DELETE", f"{OPS}/plans/default/rate-cards/1", None),
             ("PUT", f"{OPS}/tenants/{tenant['id']}", {"plan_id": "default"}), ("GET", f"{OPS}/tenants/{tenant['id']}", None),
             # the other billing slices' operator routes (bills, anomalies)
             ("GET", f"{OPS}/issuer", None), ("PUT", f"{OPS}/issuer", {}), ("GET", f"{OPS}/revenue", None),
             ("GET", f"{OPS}/anomalies", None),
             ("PUT", f"{OPS}/exchange-rates/2026-01", {"currency": "EUR", "rate": "1"}),
             ("GET", f"{OPS}/exchange-rates/2026-01", None)]
    routes = [(m, p) for p, ms in app.openapi()["paths"].items() if p.startswith(OPS) for m in ms]
    assert len(routes) == len(calls)  # every operator route is walked
    for method, url, body in calls:
        for who in (headers, {}, {"Authorization": "Bearer wrong"}):
            r = await client.request(method, url, json=body, headers=who)
            assert r.status_code in (401, 403), (method, url, r.status_code)
