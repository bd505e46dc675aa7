"""The monthly cycle: drafts, grace, the sealed invoice of the issuer, adjustments, credit notes, crashes."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from stalela.billing import bill_lines as bl
from stalela.billing import bill_service, bill_tasks
from stalela.billing.bill_repository import BillRepository
from stalela.fiscal.invoices import service as invoices
from stalela.fiscal.invoices.models import Invoice
from stalela.fiscal.invoices.schemas import InvoiceCreate
from stalela.tenancy.context import bind_platform, bind_tenant
from tests.billing.bill_support import FakeRating, make_issuer, periods

CLI = [sys.executable, "-m", "stalela.cli.main"]


@pytest.fixture
def rating(monkeypatch) -> FakeRating:
    return FakeRating().install(monkeypatch)


async def _issuer_invoices(db, issuer_id: str) -> list[Invoice]:
    async with db.transaction(readonly=True) as session:
        await bind_tenant(session, issuer_id)
        return list((await session.execute(select(Invoice).order_by(Invoice.leaf_index))).scalars())


async def _bill(db, tenant_id: str, period: str):
    async with db.transaction(readonly=True) as session:
        await bind_tenant(session, tenant_id)
        return await BillRepository(session).of_period(period)


async def test_full_cycle_draft_grace_seal_and_verify(app, client, new_tenant, operator_headers, rating, settings,
                                                      database_url):
    db = app.state.db
    issuer, _, outlet = await make_issuer(client, new_tenant, operator_headers)
    tenant, headers = await new_tenant("Boutique SARL", "B1234567")
    p1, _, _ = periods()
    rating.set(tenant["id"], p1, api_calls=("1000", "12.50"), invoices_sealed=("40", "3.00"))
    end = bl.period_end(p1)

    report = await bill_tasks.close_period(db, settings, p1, tenant_ids=[tenant["id"]], now=end + timedelta(hours=1))
    assert report.bills[tenant["id"]]["status"] == "draft" and report.bills[tenant["id"]]["total"] == "15.50"
    # A late event during the grace period is simply included.
    rating.set(tenant["id"], p1, api_calls=("1200", "15.00"), invoices_sealed=("40", "3.00"))
    report = await bill_tasks.close_period(db, settings, p1, tenant_ids=[tenant["id"]], now=end + timedelta(hours=2))
    bill = report.bills[tenant["id"]]
    assert bill["status"] == "draft" and bill["total"] == "18.00" and bill["invoice_id"] is None
    assert await _issuer_invoices(db, issuer["id"]) == []

    report = await bill_tasks.close_period(db, settings, p1, tenant_ids=[tenant["id"]],
                                           now=end + timedelta(hours=settings.billing_grace_hours, seconds=1))
    bill = report.bills[tenant["id"]]
    assert bill["status"] == "sealed" and bill["invoice_id"]
    assert rating.used == {("standard", 1)}

    r = await client.get(f"/v1/billing/invoices/{bill['id']}", headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    invoice = body["invoice"]
    assert invoice["tenant_id"] == issuer["id"] and invoice["outlet_id"] == outlet["id"] and invoice["type"] == "FV"
    assert invoice["buyer"]["tax_id"] == "B1234567" and invoice["buyer"]["name"] == "Boutique SARL"
    assert invoice["seal"]["payload"]["buyer_tax_id"] == "B1234567"
    assert [(ln["unit_price"], ln["tax_group"]) for ln in invoice["lines"]] == [("15.00", "B"), ("3.00", "B")]
    assert "api_calls" in invoice["lines"][0]["description"] and p1 in invoice["lines"][0]["description"]
    assert invoice["totals"]["total"] == "20.88"  # 18.00 + 16 % VAT
    assert body["invoice_total"] == "20.88" and body["total"] == "18.00"
    assert [ln["resource"] for ln in body["lines"]] == ["api_calls", "invoices_sealed"]
    assert body["lines"][0]["rate_card_version"] == 1

    # The issuer's ledger verifies, the bill's invoice in it.
    env = {"PATH": "/usr/bin:/bin", "STALELA_MASTER_KEY": "6d" * 32, "STALELA_DATA_DIR": str(settings.data_dir),
           "STALELA_DATABASE_URL": database_url}
    r = subprocess.run([*CLI, "verify", "--database-url", database_url, "--tenant", issuer["id"]], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0 and "VALID" in r.stderr, r.stdout + r.stderr

    # A re-run (and later usage) never changes a sealed bill.
    before = await _bill(db, tenant["id"], p1)
    rating.set(tenant["id"], p1, api_calls=("1300", "16.00"), invoices_sealed=("40", "3.00"))
    await bill_tasks.close_period(db, settings, p1, tenant_ids=[tenant["id"]], finalize_now=True)
    after = await _bill(db, tenant["id"], p1)
    assert (after.lines, after.status, after.invoice_id, after.total_cents, after.updated_at) == \
        (before.lines, before.status, before.invoice_id, before.total_cents, before.updated_at)
    assert len(await _issuer_invoices(db, issuer["id"])) == 1


async def test_late_usage_becomes_an_adjustment_and_a_void_a_credit_note(app, client, new_tenant, operator_headers,
                                                                           rating, settings):
    db = app.state.db
    issuer, _, _ = await make_issuer(client, new_tenant, operator_headers)
    tenant, headers = await new_tenant("Late SARL", "L1234567")
    p1, p2, _ = periods()
    rating.set(tenant["id"], p1, api_calls=("1000", "10.00"), storage_bytes=("5000", "8.00"))
    first = (await bill_tasks.close_period(db, settings, p1, tenant_ids=[tenant["id"]], finalize_now=True)).bills
    first_invoice = first[tenant["id"]]["invoice_id"]
    # After sealing: more API calls of p1 arrive; some storage of p1 is voided.
    rating.set(tenant["id"], p1, api_calls=("1500", "14.00"), storage_bytes=("2000", "3.00"))
    rating.set(tenant["id"], p2, api_calls=("100", "1.00"))
    second = (await bill_tasks.close_period(db, settings, p2, tenant_ids=[tenant["id"]], finalize_now=True)).bills
    bill = second[tenant["id"]]
    assert bill["status"] == "sealed" and bill["total"] == "5.00"  # 1.00 + the 4.00 adjustment
    body = (await client.get(f"/v1/billing/invoices/{bill['id']}", headers=headers)).json()
    adjustment = next(ln for ln in body["lines"] if ln["kind"] == "adjustment")
    assert (adjustment["resource"], adjustment["period_of"], adjustment["amount"], adjustment["billed_before"]) == \
        ("api_calls", p1, "4.00", "10.00")
    [credit] = body["credit_notes"]
    assert (credit["resource"], credit["period_of"], credit["amount"]) == ("storage_bytes", p1, "5.00")
    sealed = {inv.id: inv for inv in await _issuer_invoices(db, issuer["id"])}
    note = sealed[credit["invoice_id"]]
    assert note.type == "FA" and note.original == sealed[first_invoice].fiscal_number
    assert json.loads(note.document)["nature"] == "COR" and note.total_cents == 580  # 5.00 + 16 %
    assert len(sealed) == 3

    # Re-runs: no second credit note, no second adjustment; a third period sees p1 settled.
    await bill_tasks.close_period(db, settings, p2, tenant_ids=[tenant["id"]], finalize_now=True)
    assert len(await _issuer_invoices(db, issuer["id"])) == 3
    async with db.transaction() as session:
        await bind_tenant(session, tenant["id"])
        lines, _ = await bill_service._lines(session, tenant["id"], bl.previous_period(p2, -1))
    assert [ln for ln in lines if ln["period_of"] == p1] == []


async def _billed(client, new_tenant, operator_headers, rating, name: str, **usage):
    """An issuer, and a tenant ``name`` (tax id R1234567) with ``usage`` in the period two months ago."""
    issuer, _, outlet = await make_issuer(client, new_tenant, operator_headers)
    tenant, _ = await new_tenant(name, "R1234567")
    p1, _, _ = periods()
    rating.set(tenant["id"], p1, **usage)
    return issuer, outlet, tenant, p1


async def test_crash_between_seal_and_bill_update_gives_one_invoice(app, client, new_tenant, operator_headers,
                                                                     rating, settings, monkeypatch):
    db = app.state.db
    issuer, _, tenant, p1 = await _billed(client, new_tenant, operator_headers, rating, "Crash SARL",
                                          cpu_seconds=("3600", "7.20"))
    real_seal = bill_service._seal

    async def crash(*args, **kwargs):
        await real_seal(*args, **kwargs)
        raise bill_service.BillingUnavailable("killed after the seal")

    monkeypatch.setattr(bill_service, "_seal", crash)
    report = await bill_tasks.close_period(db, settings, p1, tenant_ids=[tenant["id"]], finalize_now=True)
    assert tenant["id"] in report.failed
    assert await _issuer_invoices(db, issuer["id"]) == []  # the seal and the bill commit together
    monkeypatch.setattr(bill_service, "_seal", real_seal)
    report = await bill_tasks.close_period(db, settings, p1, tenant_ids=[tenant["id"]], finalize_now=True)
    [inv] = await _issuer_invoices(db, issuer["id"])
    assert report.bills[tenant["id"]]["invoice_id"] == inv.id and inv.counter == 1


async def test_a_seal_committed_without_its_bill_is_replayed_not_sealed_twice(app, client, new_tenant,
                                                                               operator_headers, rating, settings):
    db = app.state.db
    issuer, outlet, tenant, p1 = await _billed(client, new_tenant, operator_headers, rating, "Replay SARL",
                                               network_bytes=("10", "2.50"))
    draft = (await bill_tasks.close_period(db, settings, p1, tenant_ids=[tenant["id"]],
                                           now=bl.period_end(p1) + timedelta(minutes=1))).bills[tenant["id"]]
    # An earlier run sealed with the bill's Idempotency-Key and died before recording it on the bill.
    bill = await _bill(db, tenant["id"], p1)
    body = bl.invoice_body(bl.PROFILES["CD"], outlet["id"], "CDF", {"name": "Replay SARL", "tax_id": "R1234567"},
                           draft["id"], json.loads(bill.lines))
    async with db.transaction() as session:
        await bind_tenant(session, issuer["id"])
        principal = bill_service.system_principal(bill_service._Issuer(issuer["id"], outlet["id"], "CD",
                                                                       bl.PROFILES["CD"]))
        first = await invoices.seal_invoice(session, settings, principal, InvoiceCreate.model_validate(body),
                                            bl.bill_key(tenant["id"], p1))
    report = await bill_tasks.close_period(db, settings, p1, tenant_ids=[tenant["id"]], finalize_now=True)
    assert report.bills[tenant["id"]]["invoice_id"] == first.body["id"]
    assert len(await _issuer_invoices(db, issuer["id"])) == 1


async def test_fifty_concurrent_finalisations_are_numbered_gap_free(app, client, new_tenant, operator_headers,
                                                                     rating, settings):
    db = app.state.db
    issuer, _, _ = await make_issuer(client, new_tenant, operator_headers)
    p1, _, _ = periods()
    tenants = []
    for i in range(50):
        tenant, _ = await new_tenant(f"Client {i} SARL", f"T{i:07d}")
        rating.set(tenant["id"], p1, api_calls=(str(100 + i), f"{1 + i}.00"))
        tenants.append(tenant["id"])
    reports = await asyncio.gather(*(bill_tasks.close_period(db, settings, p1, tenant_ids=[t], finalize_now=True)
                                     for t in tenants))
    assert all(not r.failed for r in reports), [r.failed for r in reports if r.failed]
    sealed = await _issuer_invoices(db, issuer["id"])
    assert sorted(inv.counter for inv in sealed) == list(range(1, 51))
    assert {r.bills[t]["invoice_id"] for r, t in zip(reports, tenants)} == {inv.id for inv in sealed}


async def test_nothing_to_bill_closes_empty_without_an_invoice(app, client, new_tenant, rating, settings):
    tenant, headers = await new_tenant("Quiet SARL", "Q1234567")
    p1, _, _ = periods()
    report = await bill_tasks.close_period(app.state.db, settings, p1, tenant_ids=[tenant["id"]], finalize_now=True)
    bill = report.bills[tenant["id"]]
    assert (bill["status"], bill["total"], bill["invoice_id"]) == ("empty", "0.00", None)
    r = await client.get(f"/v1/billing/invoices/{bill['id']}/pdf", headers=headers)
    assert r.status_code == 404 and r.json()["code"] == "bill_not_sealed"


async def test_open_period_and_bad_period_are_refused(app, rating, settings, new_tenant):
    tenant, _ = await new_tenant("Early SARL", "E1234567")
    _, _, current = periods()
    report = await bill_tasks.close_period(app.state.db, settings, current, tenant_ids=[tenant["id"]])
    assert report.failed[tenant["id"]].startswith("billing_period_open")
    with pytest.raises(Exception) as caught:
        await bill_tasks.close_period(app.state.db, settings, "2026-13")
    assert getattr(caught.value, "code", None) == "period_invalid"


async def test_the_issuer_does_not_bill_itself(app, client, new_tenant, operator_headers, rating, settings):
    issuer, _, _ = await make_issuer(client, new_tenant, operator_headers)
    p1, _, _ = periods()
    assert issuer["id"] not in await bill_tasks.billed_tenants(app.state.db)
    rating.set(issuer["id"], p1, api_calls=("1", "1.00"))
    report = await bill_tasks.close_period(app.state.db, settings, p1, tenant_ids=[issuer["id"]], finalize_now=True)
    assert report.failed[issuer["id"]].startswith("billing_issuer_is_billed")


async def test_platform_binding_reads_the_revenue(app, client, new_tenant, operator_headers, rating, settings):
    await make_issuer(client, new_tenant, operator_headers)
    tenant, _ = await new_tenant("Revenue SARL", "V1234567")
    p1, _, _ = periods()
    rating.set(tenant["id"], p1, api_calls=("1", "9.99"))
    await bill_tasks.close_period(app.state.db, settings, p1, tenant_ids=[tenant["id"]], finalize_now=True)
    r = await client.get(f"/v1/ops/billing/revenue?period={p1}", headers=operator_headers)
    assert r.status_code == 200, r.text
    row = next(x for x in r.json()["data"] if x["tenant_id"] == tenant["id"])
    assert (row["tenant_name"], row["total"], row["status"], row["invoice_total"]) == \
        ("Revenue SARL", "9.99", "sealed", "11.59")
    assert (await client.get("/v1/ops/billing/revenue?period=2026-1", headers=operator_headers)).status_code == 422
    async with app.state.db.transaction(readonly=True) as session:
        await bind_platform(session)
        assert (await session.execute(select(func.count()).select_from(Invoice))).scalar_one() > 0
