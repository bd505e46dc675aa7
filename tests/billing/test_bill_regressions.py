"""Regressions of the monthly bills (the reviewer's reproducers, on both databases): a sealed period is
never re-priced, a credit is converted at its invoice's rate and split across the invoices that billed
it, one tenant's bug stops nobody else's bill, suspended tenants are billed, the issuer's cap never
refuses the platform's own bills."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from sqlalchemy import update

from stalela.billing import bill_lines as bl
from stalela.billing import bill_service, bill_tasks, usage_service
from stalela.billing.rating_models import RateCard
from stalela.tenancy.context import bind_platform, bind_tenant
from tests.billing.bill_support import OPS, at, cdf_plan, make_issuer, periods, use, void
from tests.billing.bill_support import settings  # noqa: F401  (no API-call metering in these tests)
from tests.billing.support import plan_id
from tests.billing.test_bill_cycle import _bill, _issuer_invoices
from tests.support.invoices import sample_invoice


async def _close(db, settings, period: str, tenant_id: str, **kwargs):  # noqa: ANN001
    report = await bill_tasks.close_period(db, settings, period, tenant_ids=[tenant_id], finalize_now=True, **kwargs)
    assert not report.failed, report.failed
    return report.bills[tenant_id]


async def _cdf_tenant(client, new_tenant, operator_headers, tax_id: str):  # noqa: ANN001
    """An issuer, and a tenant on a fresh CDF plan (75 CDF an invoice): (issuer, tenant, its headers, plan)."""
    issuer, _, _ = await make_issuer(client, new_tenant, operator_headers)
    tenant, headers = await new_tenant("Boutique SARL", tax_id)
    return issuer, tenant, headers, await cdf_plan(client, operator_headers, tenant["id"])


async def _next_lines(db, tenant_id: str, period: str) -> list[dict]:  # noqa: ANN001
    async with db.transaction() as session:
        await bind_tenant(session, tenant_id)
        lines, _ = await bill_service._lines(session, tenant_id, period)
    return lines


async def test_a_plan_change_after_sealing_reprices_no_sealed_period(app, client, new_tenant, operator_headers,
                                                                     settings):
    db = app.state.db
    issuer, tenant, headers, plan = await _cdf_tenant(client, new_tenant, operator_headers, "B1234567")
    p1, p2, cur = periods()
    await use(client, headers, "seal-a", "invoices_sealed", "40", at(p1, 9))
    assert (await _close(db, settings, p1, tenant["id"]))["status"] == "sealed"
    # The operator moves the tenant to a cheaper plan; no late usage at all: nothing to adjust or credit.
    await cdf_plan(client, operator_headers, tenant["id"], prices={"invoices_sealed": {"unit_price": "10", "per": 1}})
    await use(client, headers, "seal-b", "invoices_sealed", "1", at(p2, 9))
    await _close(db, settings, p2, tenant["id"])
    lines = json.loads((await _bill(db, tenant["id"], p2)).lines)
    assert [ln for ln in lines if ln["period_of"] == p1] == []
    assert [(ln["kind"], ln["amount"]) for ln in lines] == [("usage", "10.00")]
    # Late usage of p1 is priced with p1's card (75), not the current plan's.
    await use(client, headers, "seal-late", "invoices_sealed", "2", at(p1, 20))
    assert [(ln["kind"], ln["period_of"], ln["amount"]) for ln in await _next_lines(db, tenant["id"], cur)] == \
        [("adjustment", p1, "150.00")]


async def test_no_card_may_take_effect_inside_a_sealed_period(app, client, new_tenant, operator_headers, settings):
    db = app.state.db
    issuer, tenant, headers, plan = await _cdf_tenant(client, new_tenant, operator_headers, "B1234569")
    p1, p2, cur = periods()
    await use(client, headers, "s-1", "invoices_sealed", "4", at(p1, 9))
    await _close(db, settings, p1, tenant["id"])
    await use(client, headers, "s-2", "invoices_sealed", "4", at(p2, 9))
    await _close(db, settings, p2, tenant["id"])
    # As in production: the card's FIRST use was p1's bill, a few days after p1 ended (mark_used keeps it).
    async with db.transaction() as session:
        await bind_platform(session)
        await session.execute(update(RateCard).where(RateCard.plan_id == plan).values(
            used_at=datetime.combine(at(p2, 4).date(), datetime.min.time(), timezone.utc)))
    for day in (f"{p2}-05", (bl.period_end(p2) - timedelta(days=1)).date().isoformat()):
        r = await client.post(f"{OPS}/plans/{plan}/rate-cards", headers=operator_headers,
                              json={"effective_from": day, "prices": {"invoices_sealed": {"unit_price": "1000", "per": 1}}})
        assert r.status_code == 409 and r.json()["code"] == "rate_card_in_use", r.text
    r = await client.post(f"{OPS}/plans/{plan}/rate-cards", headers=operator_headers,
                          json={"effective_from": f"{cur}-01", "prices": {"invoices_sealed": {"unit_price": "1000", "per": 1}}})
    assert r.status_code == 201, r.text  # the first day after the last priced period
    assert [ln for ln in await _next_lines(db, tenant["id"], cur) if ln["period_of"] in (p1, p2)] == []


async def _rated_plan(client, operator_headers, tenant_id: str, currency: str, rates: dict[str, str]) -> None:  # noqa: ANN001
    pid = plan_id(currency.lower())
    r = await client.post(f"{OPS}/plans", json={"id": pid, "name": currency, "currency": currency},
                          headers=operator_headers)
    assert r.status_code == 201, r.text
    r = await client.post(f"{OPS}/plans/{pid}/rate-cards", headers=operator_headers,
                          json={"effective_from": "2026-01-01", "prices": {"invoices_sealed": {"unit_price": "1", "per": 1}}})
    assert r.status_code == 201, r.text
    assert (await client.put(f"{OPS}/tenants/{tenant_id}", json={"plan_id": pid}, headers=operator_headers)).status_code == 200
    # GBP is this test's alone: a rate a sealed bill used is immutable, and the databases are shared.
    for period, rate in rates.items():
        r = await client.put(f"{OPS}/exchange-rates/{period}", json={"currency": currency, "rate": rate},
                             headers=operator_headers)
        assert r.status_code in (200, 201), r.text


async def test_a_void_is_credited_at_the_rate_of_the_invoice_it_corrects(app, client, new_tenant, operator_headers,
                                                                          settings):
    db = app.state.db
    issuer, _, _ = await make_issuer(client, new_tenant, operator_headers)
    tenant, headers = await new_tenant("Boutique SARL", "B1234570")
    p1, p2, _ = periods()
    await _rated_plan(client, operator_headers, tenant["id"], "GBP", {p1: "3000", p2: "3100"})
    await use(client, headers, "v-1", "invoices_sealed", "100", at(p1, 9))
    first = await _close(db, settings, p1, tenant["id"])
    with usage_service.clock.use(lambda: at(p2, 2)):
        await void(client, headers, "v-1")  # the whole of p1 was a mistake
    bill = await _close(db, settings, p2, tenant["id"])  # the rate rose: credited at p1's, never stuck
    assert bill["status"] == "empty"
    body = (await client.get(f"/v1/billing/invoices/{bill['id']}", headers=headers)).json()
    [credit] = body["credit_notes"]
    assert (credit["amount"], credit["invoice_amount"], credit["exchange_rate"]) == ("100.00", "300000.00", "3000")
    sealed = {inv.id: inv for inv in await _issuer_invoices(db, issuer["id"])}
    assert sealed[credit["invoice_id"]].original == sealed[first["invoice_id"]].fiscal_number
    assert sealed[credit["invoice_id"]].total_cents == sealed[first["invoice_id"]].total_cents


async def test_a_credit_is_split_across_the_invoices_that_billed_it(app, client, new_tenant, operator_headers,
                                                                    settings):
    db = app.state.db
    issuer, tenant, headers, plan = await _cdf_tenant(client, new_tenant, operator_headers, "B1234572")
    p1, p2, cur = periods()
    await use(client, headers, "e-1", "invoices_sealed", "40", at(p1, 9))     # 3000.00 on p1's invoice
    first = await _close(db, settings, p1, tenant["id"])
    await use(client, headers, "e-2", "invoices_sealed", "10", at(p1, 28))    # 750.00, adjusted on p2's
    second = await _close(db, settings, p2, tenant["id"])
    assert second["total"] == "750.00"
    with usage_service.clock.use(lambda: at(p2, 3)):
        await void(client, headers, "e-1")
        await void(client, headers, "e-2")
    bill = await _close(db, settings, cur, tenant["id"], now=bl.period_end(cur) + timedelta(hours=1))
    body = (await client.get(f"/v1/billing/invoices/{bill['id']}", headers=headers)).json()
    sealed = {inv.id: inv for inv in await _issuer_invoices(db, issuer["id"])}
    credited = [(c["amount"], sealed[c["invoice_id"]].original) for c in body["credit_notes"]]
    assert credited == [("750.00", sealed[second["invoice_id"]].fiscal_number),
                        ("3000.00", sealed[first["invoice_id"]].fiscal_number)]
    assert [ln for ln in await _next_lines(db, tenant["id"], bl.previous_period(cur, -1)) if ln["period_of"] == p1] == []


async def test_one_tenants_bug_does_not_stop_the_others(app, client, new_tenant, operator_headers, settings,
                                                        monkeypatch):
    db = app.state.db
    await make_issuer(client, new_tenant, operator_headers)
    broken, broken_headers = await new_tenant("Broken SARL", "B1234573")
    fine, fine_headers = await new_tenant("Fine SARL", "B1234574")
    await cdf_plan(client, operator_headers, broken["id"], fine["id"])
    p1, _, _ = periods()
    await use(client, broken_headers, "x", "invoices_sealed", "1", at(p1, 9))
    await use(client, fine_headers, "y", "invoices_sealed", "1", at(p1, 9))
    real = bill_service.finalize

    async def finalize(session, settings, tenant_id, *args, **kwargs):  # noqa: ANN001
        if tenant_id == broken["id"]:
            raise RuntimeError("a bug")
        return await real(session, settings, tenant_id, *args, **kwargs)

    monkeypatch.setattr(bill_service, "finalize", finalize)
    report = await bill_tasks.close_period(db, settings, p1, tenant_ids=[broken["id"], fine["id"]], finalize_now=True)
    assert report.failed == {broken["id"]: "internal_error: RuntimeError"}
    assert report.bills[fine["id"]]["status"] == "sealed"
    bill = await _bill(db, broken["id"], p1)
    assert (bill.status, bill.pending_reason) == ("draft", "internal_error: RuntimeError")


async def test_a_suspended_tenant_is_billed(app, client, new_tenant, operator_headers, settings):
    db = app.state.db
    issuer, tenant, headers, plan = await _cdf_tenant(client, new_tenant, operator_headers, "B1234575")
    p1, _, _ = periods()
    await use(client, headers, "s", "invoices_sealed", "2", at(p1, 9))
    r = await client.post(f"/v1/tenants/{tenant['id']}/suspend", headers=operator_headers)
    assert r.status_code == 200, r.text
    assert tenant["id"] in await bill_tasks.billed_tenants(db)
    bill = await _close(db, settings, p1, tenant["id"])
    assert (bill["status"], bill["total"]) == ("sealed", "150.00")


async def test_the_issuers_seal_quota_never_refuses_the_platforms_bills(app, client, new_tenant, operator_headers,
                                                                       settings):
    db = app.state.db
    issuer, issuer_headers, outlet = await make_issuer(client, new_tenant, operator_headers)
    capped = plan_id("capped")
    r = await client.post(f"{OPS}/plans", json={"id": capped, "name": "Capped", "currency": "CDF",
                                               "quotas": {"invoices_sealed": "0"}}, headers=operator_headers)
    assert r.status_code == 201, r.text
    assert (await client.put(f"{OPS}/tenants/{issuer['id']}", json={"plan_id": capped},
                             headers=operator_headers)).status_code == 200
    tenant, headers = await new_tenant("Boutique SARL", "B1234576")
    await cdf_plan(client, operator_headers, tenant["id"])
    p1, _, _ = periods()
    await use(client, headers, "q", "invoices_sealed", "2", at(p1, 9))
    assert (await _close(db, settings, p1, tenant["id"]))["status"] == "sealed"
    # The cap still applies to the issuer's own seals.
    r = await client.post("/v1/invoices", headers=issuer_headers, json=sample_invoice(outlet["id"]))
    assert r.status_code == 429 and r.json()["code"] == "quota_exceeded", r.text
