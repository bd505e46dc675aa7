"""Plans priced in another currency than the issuer's: the operator's exchange rates, the conversion of
each line at finalisation, and a missing rate keeping the bill a visible draft."""
from __future__ import annotations

from decimal import Decimal

from stalela.billing import bill_lines as bl
from stalela.billing import bill_tasks
from tests.billing.bill_support import OPS, at, make_issuer, periods, use
from tests.billing.bill_support import settings  # noqa: F401  (no API-call metering in these tests)
from tests.billing.support import plan_id

# Only this module prices a plan in USD, so the (period, USD, CDF) rate is this test's to record.
USD_PRICES = {"cpu_seconds": {"unit_price": "1.25", "per": 3600}, "network_bytes": {"unit_price": "0.001", "per": 1}}


async def _usd_plan(client, operator_headers, tenant_id: str) -> str:
    pid = plan_id("usd")
    assert (await client.post(f"{OPS}/plans", json={"id": pid, "name": "Dollar", "currency": "USD"},
                              headers=operator_headers)).status_code == 201
    assert (await client.post(f"{OPS}/plans/{pid}/rate-cards", json={"effective_from": "2026-01-01",
                                                                      "prices": USD_PRICES},
                              headers=operator_headers)).status_code == 201
    assert (await client.put(f"{OPS}/tenants/{tenant_id}", json={"plan_id": pid},
                             headers=operator_headers)).status_code == 200
    return pid


async def test_a_missing_rate_keeps_a_visible_draft_then_the_bill_is_converted_once(app, client, new_tenant,
                                                                                      operator_headers, settings):
    db = app.state.db
    issuer, _, _ = await make_issuer(client, new_tenant, operator_headers)
    tenant, headers = await new_tenant("Dollar SARL", "D1234567")
    await _usd_plan(client, operator_headers, tenant["id"])
    p1, _, _ = periods()
    await use(client, headers, "cpu", "cpu_seconds", "7200.5", at(p1, 4))     # 2.500173... -> 2.50 USD
    await use(client, headers, "net", "network_bytes", "12345", at(p1, 8))    # 12.345 -> 12.35 USD (half up)

    report = await bill_tasks.close_period(db, settings, p1, tenant_ids=[tenant["id"]], finalize_now=True)
    assert report.failed[tenant["id"]].startswith("billing_exchange_rate_missing")
    revenue = (await client.get(f"{OPS}/revenue?period={p1}", headers=operator_headers)).json()["data"]
    row = next(r for r in revenue if r["tenant_id"] == tenant["id"])
    assert (row["status"], row["total"], row["currency"], row["invoice_total"]) == ("draft", "14.85", "USD", None)
    assert row["pending_reason"].startswith("billing_exchange_rate_missing: no exchange rate USD→CDF for " + p1)
    [bill] = (await client.get("/v1/billing/invoices", headers=headers)).json()["data"]
    body = (await client.get(f"/v1/billing/invoices/{bill['id']}", headers=headers)).json()
    assert body["status"] == "draft" and body["pending_reason"] == row["pending_reason"]

    rate = "2875.123456"
    r = await client.put(f"{OPS}/exchange-rates/{p1}", json={"currency": "USD", "rate": rate}, headers=operator_headers)
    assert r.status_code == 201 and (r.json()["invoice_currency"], r.json()["used_at"]) == ("CDF", None), r.text
    report = await bill_tasks.close_period(db, settings, p1, tenant_ids=[tenant["id"]], finalize_now=True)
    assert report.failed == {} and report.bills[tenant["id"]]["status"] == "sealed"

    body = (await client.get(f"/v1/billing/invoices/{bill['id']}", headers=headers)).json()
    assert (body["total"], body["currency"]) == ("14.85", "USD")  # the plan's currency, before taxes
    assert (body["invoice_currency"], body["exchange_rate"], body["pending_reason"]) == ("CDF", rate, None)
    # Each line converted once: round_half_up(amount x rate, 2); the invoice is the sum of those plus VAT.
    expected = {"cpu_seconds": "7187.81", "network_bytes": "35507.77"}  # 2.50 x r = 7187.80864, 12.35 x r = 35507.7747
    assert {ln["resource"]: ln["invoice_amount"] for ln in body["lines"]} == expected
    for line in body["lines"]:
        assert Decimal(line["invoice_amount"]) == bl.convert(Decimal(line["amount"]), Decimal(rate))
    invoice = body["invoice"]
    assert invoice["currency"] == "CDF" and [ln["unit_price"] for ln in invoice["lines"]] == list(expected.values())
    assert f"2.50 USD × {rate} = 7187.81 CDF" in invoice["lines"][0]["description"]
    subtotal = sum(Decimal(v) for v in expected.values())
    assert Decimal(invoice["totals"]["total"]) == subtotal + bl.convert(subtotal, Decimal("0.16"))
    assert body["invoice_total"] == invoice["totals"]["total"]

    # The rate a sealed bill used is immutable: the same value is answered, another refused.
    r = await client.put(f"{OPS}/exchange-rates/{p1}", json={"currency": "USD", "rate": rate},
                         headers=operator_headers)
    assert r.status_code == 200 and r.json()["rate"] == rate and r.json()["used_at"] is not None, r.text
    r = await client.put(f"{OPS}/exchange-rates/{p1}", json={"currency": "USD", "rate": "2900"},
                         headers=operator_headers)
    assert r.status_code == 409 and r.json()["code"] == "exchange_rate_in_use" and r.json()["field"] == "rate"
    listed = (await client.get(f"{OPS}/exchange-rates/{p1}", headers=operator_headers)).json()
    assert any((x["currency"], x["rate"]) == ("USD", rate) for x in listed["data"]) and listed["period"] == p1


async def test_exchange_rate_api_validation(client, new_tenant, operator_headers):
    await make_issuer(client, new_tenant, operator_headers)
    _, tenant_headers = await new_tenant("Curious SARL", "C7654321")
    period = "2026-02"  # no bill of these tests is in it
    ok = await client.put(f"{OPS}/exchange-rates/{period}", json={"currency": "GBP", "rate": "3500"},
                          headers=operator_headers)
    assert ok.status_code in (200, 201), ok.text
    again = await client.put(f"{OPS}/exchange-rates/{period}", json={"currency": "GBP", "rate": "3600.5"},
                             headers=operator_headers)
    assert again.status_code == 200 and again.json()["rate"] == "3600.5"  # unused: correctable
    for body, field in (({"currency": "GBP", "rate": "0"}, "rate"), ({"currency": "GBP", "rate": "1.1234567"}, "rate"),
                        ({"currency": "GBP", "rate": 3050.25}, "rate"), ({"currency": "GBP", "rate": "-2"}, "rate"),
                        ({"currency": "GBP", "rate": "1e3"}, "rate"), ({"currency": "gbp", "rate": "2"}, "currency"),
                        ({"currency": "GBP"}, "rate"), ({"currency": "GBP", "rate": "2", "extra": 1}, "extra")):
        r = await client.put(f"{OPS}/exchange-rates/{period}", json=body, headers=operator_headers)
        assert r.status_code == 422 and field in (r.json().get("field") or ""), (body, r.text)
    r = await client.put(f"{OPS}/exchange-rates/{period}", json={"currency": "CDF", "rate": "1"},
                         headers=operator_headers)
    assert r.status_code == 422 and r.json()["code"] == "exchange_rate_same_currency"
    for bad in ("2026-13", "2026-1", "x"):
        r = await client.put(f"{OPS}/exchange-rates/{bad}", json={"currency": "GBP", "rate": "2"},
                             headers=operator_headers)
        assert r.status_code == 422, bad
    for method in ("GET", "PUT"):
        r = await client.request(method, f"{OPS}/exchange-rates/{period}", json={"currency": "GBP", "rate": "2"},
                                 headers=tenant_headers)
        assert r.status_code == 401, method
