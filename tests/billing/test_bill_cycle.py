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
from stalela.db.base import utcnow
from stalela.fiscal.invoices.models import Invoice
from stalela.fiscal.invoices.schemas import InvoiceCreate
from stalela.privacy.export_archive import Snapshot, write_payload
from stalela.privacy.export_bag import Bag
from stalela.privacy.export_repository import SnapshotRepository
from stalela.tenancy.context import bind_platform, bind_tenant
from tests.billing.bill_support import OPS, at, cdf_plan, eur_rate, make_issuer, periods, use, void
from tests.billing.bill_support import settings  # noqa: F401  (no API-call metering in these tests)

CLI = [sys.executable, "-m", "stalela.cli.main"]


async def _issuer_invoices(db, issuer_id: str) -> list[Invoice]:
    async with db.transaction(readonly=True) as session:
        await bind_tenant(session, issuer_id)
        return list((await session.execute(select(Invoice).order_by(Invoice.leaf_index))).scalars())


async def _bill(db, tenant_id: str, period: str):
    async with db.transaction(readonly=True) as session:
        await bind_tenant(session, tenant_id)
        return await BillRepository(session).of_period(period)


async def test_full_cycle_draft_grace_seal_and_verify(app, client, new_tenant, operator_headers, settings,
                                                      database_url):
    db = app.state.db
    issuer, _, outlet = await make_issuer(client, new_tenant, operator_headers)
    tenant, headers = await new_tenant("Boutique SARL", "B1234567")
    plan = await cdf_plan(client, operator_headers, tenant["id"])
    p1, _, _ = periods()
    await use(client, headers, "calls-1", "api_calls", "4000", at(p1, 3))  # 4,000 x 0.25 = 1000.00
    await use(client, headers, "seals-1", "invoices_sealed", "40", at(p1, 9))  # 40 x 75 = 3000.00
    end = bl.period_end(p1)

    report = await bill_tasks.close_period(db, settings, p1, tenant_ids=[tenant["id"]], now=end + timedelta(hours=1))
    assert report.bills[tenant["id"]]["status"] == "draft" and report.bills[tenant["id"]]["total"] == "4000.00"
    # A late event during the grace period is simply included.
    await use(client, headers, "calls-2", "api_calls", "800", at(p1, 28))
    report = await bill_tasks.close_period(db, settings, p1, tenant_ids=[tenant["id"]], now=end + timedelta(hours=2))
    bill = report.bills[tenant["id"]]
    assert bill["status"] == "draft" and bill["total"] == "4200.00" and bill["invoice_id"] is None
    assert await _issuer_invoices(db, issuer["id"]) == []

    report = await bill_tasks.close_period(db, settings, p1, tenant_ids=[tenant["id"]],
                                           now=end + timedelta(hours=settings.billing_grace_hours, seconds=1))
    bill = report.bills[tenant["id"]]
    assert bill["status"] == "sealed" and bill["invoice_id"]
    card = (await client.get(f"{OPS}/plans/{plan}/rate-cards/1", headers=operator_headers)).json()
    assert card["used_at"] is not None  # the card a sealed bill priced is immutable now

    r = await client.get(f"/v1/billing/invoices/{bill['id']}", headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    invoice = body["invoice"]
    assert invoice["tenant_id"] == issuer["id"] and invoice["outlet_id"] == outlet["id"] and invoice["type"] == "FV"
    assert invoice["buyer"]["tax_id"] == "B1234567" and invoice["buyer"]["name"] == "Boutique SARL"
    assert invoice["seal"]["payload"]["buyer_tax_id"] == "B1234567"
    assert [(ln["unit_price"], ln["tax_group"]) for ln in invoice["lines"]] == [("1200.00", "B"), ("3000.00", "B")]
    assert "api_calls" in invoice["lines"][0]["description"] and p1 in invoice["lines"][0]["description"]
    assert invoice["totals"]["total"] == "4872.00"  # 4200.00 + 16 % VAT
    assert body["invoice_total"] == "4872.00" and body["total"] == "4200.00"
    assert (body["currency"], body["invoice_currency"], body["exchange_rate"]) == ("CDF", "CDF", None)
    assert [(ln["resource"], ln["quantity"], ln["amount"]) for ln in body["lines"]] == \
        [("api_calls", "4800", "1200.00"), ("invoices_sealed", "40", "3000.00")]
    assert body["lines"][0]["rate_card_version"] == 1 and body["lines"][0]["plan_id"] == plan

    # The issuer's ledger verifies, the bill's invoice in it.
    env = {"PATH": "/usr/bin:/bin", "STALELA_MASTER_KEY": "6d" * 32, "STALELA_DATA_DIR": str(settings.data_dir),
           "STALELA_DATABASE_URL": database_url}
    r = subprocess.run([*CLI, "verify", "--database-url", database_url, "--tenant", issuer["id"]], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0 and "VALID" in r.stdout, r.stdout + r.stderr

    # A re-run (and later usage) never changes a sealed bill.
    before = await _bill(db, tenant["id"], p1)
    await use(client, headers, "calls-3", "api_calls", "400", at(p1, 30))
    await bill_tasks.close_period(db, settings, p1, tenant_ids=[tenant["id"]], finalize_now=True)
    after = await _bill(db, tenant["id"], p1)
    assert (after.lines, after.status, after.invoice_id, after.total_cents, after.updated_at) == \
        (before.lines, before.status, before.invoice_id, before.total_cents, before.updated_at)
    assert len(await _issuer_invoices(db, issuer["id"])) == 1


async def test_late_usage_becomes_an_adjustment_and_a_void_a_credit_note(app, client, new_tenant, operator_headers,
                                                                           settings):
    db = app.state.db
    issuer, _, _ = await make_issuer(client, new_tenant, operator_headers)
    tenant, headers = await new_tenant("Late SARL", "L1234567")
    await cdf_plan(client, operator_headers, tenant["id"])
    p1, p2, _ = periods()
    await use(client, headers, "calls-1", "api_calls", "4000", at(p1, 2))        # 1000.00
    await use(client, headers, "bytes-1", "network_bytes", "20", at(p1, 5))      # 20 x 0.25 = 5.00
    await use(client, headers, "bytes-2", "network_bytes", "12", at(p1, 6))      # 3.00
    first = (await bill_tasks.close_period(db, settings, p1, tenant_ids=[tenant["id"]], finalize_now=True)).bills
    first_invoice = first[tenant["id"]]["invoice_id"]
    assert first[tenant["id"]]["total"] == "1008.00"
    # After sealing: more API calls of p1 arrive (a late event); some of p1's traffic is voided.
    await use(client, headers, "calls-late", "api_calls", "1600", at(p1, 20))    # p1: 5,600 calls = 1400.00
    await void(client, headers, "bytes-1")                                        # p1: 12 bytes = 3.00
    await use(client, headers, "calls-2", "api_calls", "400", at(p2, 4))         # 100.00
    second = (await bill_tasks.close_period(db, settings, p2, tenant_ids=[tenant["id"]], finalize_now=True)).bills
    bill = second[tenant["id"]]
    assert bill["status"] == "sealed" and bill["total"] == "500.00"  # 100.00 + the 400.00 adjustment
    body = (await client.get(f"/v1/billing/invoices/{bill['id']}", headers=headers)).json()
    adjustment = next(ln for ln in body["lines"] if ln["kind"] == "adjustment")
    assert (adjustment["resource"], adjustment["period_of"], adjustment["amount"], adjustment["billed_before"]) == \
        ("api_calls", p1, "400.00", "1000.00")
    [credit] = body["credit_notes"]
    assert (credit["resource"], credit["period_of"], credit["amount"]) == ("network_bytes", p1, "5.00")
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


async def _billed(client, new_tenant, operator_headers, name: str, resource: str, quantity: str):
    """An issuer, and a tenant ``name`` (tax id R1234567) on a CDF plan with one event of ``resource`` in the
    period two months ago."""
    issuer, _, outlet = await make_issuer(client, new_tenant, operator_headers)
    tenant, headers = await new_tenant(name, "R1234567")
    await cdf_plan(client, operator_headers, tenant["id"])
    p1, _, _ = periods()
    await use(client, headers, "only", resource, quantity, at(p1, 12))
    return issuer, outlet, tenant, p1


async def test_crash_between_seal_and_bill_update_gives_one_invoice(app, client, new_tenant, operator_headers,
                                                                     settings, monkeypatch):
    db = app.state.db
    issuer, _, tenant, p1 = await _billed(client, new_tenant, operator_headers, "Crash SARL", "cpu_seconds", "3600")
    real_seal = bill_service._seal

    async def crash(*args, **kwargs):
        await real_seal(*args, **kwargs)
        raise bill_service.Conflict("killed after the seal", code="test_crash")

    monkeypatch.setattr(bill_service, "_seal", crash)
    report = await bill_tasks.close_period(db, settings, p1, tenant_ids=[tenant["id"]], finalize_now=True)
    assert tenant["id"] in report.failed
    assert await _issuer_invoices(db, issuer["id"]) == []  # the seal and the bill commit together
    monkeypatch.setattr(bill_service, "_seal", real_seal)
    report = await bill_tasks.close_period(db, settings, p1, tenant_ids=[tenant["id"]], finalize_now=True)
    [inv] = await _issuer_invoices(db, issuer["id"])
    assert report.bills[tenant["id"]]["invoice_id"] == inv.id and inv.counter == 1


async def test_a_seal_committed_without_its_bill_is_replayed_not_sealed_twice(app, client, new_tenant,
                                                                               operator_headers, settings):
    db = app.state.db
    issuer, outlet, tenant, p1 = await _billed(client, new_tenant, operator_headers, "Replay SARL", "network_bytes",
                                               "10")
    draft = (await bill_tasks.close_period(db, settings, p1, tenant_ids=[tenant["id"]],
                                           now=bl.period_end(p1) + timedelta(minutes=1))).bills[tenant["id"]]
    # An earlier run sealed with the bill's Idempotency-Key and died before recording it on the bill.
    bill = await _bill(db, tenant["id"], p1)
    lines = json.loads(bill.lines)
    bl.convert_lines(lines, None)
    body = bl.invoice_body(bl.PROFILES["CD"], outlet["id"], "CDF", {"name": "Replay SARL", "tax_id": "R1234567"},
                           draft["id"], lines)
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
                                                                     settings):
    """On the seeded default plan (EUR), converted at the period's rate into the issuer's CDF."""
    db = app.state.db
    issuer, _, _ = await make_issuer(client, new_tenant, operator_headers)
    p1, _, _ = periods()
    await eur_rate(client, operator_headers, p1)
    tenants = []
    for i in range(50):
        tenant, headers = await new_tenant(f"Client {i} SARL", f"T{i:07d}")
        # 100,000 calls are free, then 0.10 EUR per 1,000: (i + 1) EUR.
        await use(client, headers, "calls", "api_calls", str(100_000 + 10_000 * (i + 1)), at(p1, 1 + i % 28))
        tenants.append(tenant["id"])
    reports = await asyncio.gather(*(bill_tasks.close_period(db, settings, p1, tenant_ids=[t], finalize_now=True)
                                     for t in tenants))
    assert all(not r.failed for r in reports), [r.failed for r in reports if r.failed]
    sealed = await _issuer_invoices(db, issuer["id"])
    assert sorted(inv.counter for inv in sealed) == list(range(1, 51))
    assert {r.bills[t]["invoice_id"] for r, t in zip(reports, tenants)} == {inv.id for inv in sealed}
    assert sorted(r.bills[t]["total"] for r, t in zip(reports, tenants)) == sorted(f"{i}.00" for i in range(1, 51))
    # Each invoice is the bill's EUR amount x 3050.25 CDF/EUR, plus 16 % VAT: i x 3538.29 CDF.
    assert sorted(inv.total_cents for inv in sealed) == [i * 353829 for i in range(1, 51)]


async def test_nothing_to_bill_closes_empty_without_an_invoice(app, client, new_tenant, settings):
    tenant, headers = await new_tenant("Quiet SARL", "Q1234567")
    p1, _, _ = periods()
    report = await bill_tasks.close_period(app.state.db, settings, p1, tenant_ids=[tenant["id"]], finalize_now=True)
    bill = report.bills[tenant["id"]]
    assert (bill["status"], bill["total"], bill["invoice_id"]) == ("empty", "0.00", None)
    r = await client.get(f"/v1/billing/invoices/{bill['id']}/pdf", headers=headers)
    assert r.status_code == 404 and r.json()["code"] == "bill_not_sealed"


async def test_open_period_and_bad_period_are_refused(app, settings, new_tenant):
    tenant, _ = await new_tenant("Early SARL", "E1234567")
    _, _, current = periods()
    report = await bill_tasks.close_period(app.state.db, settings, current, tenant_ids=[tenant["id"]])
    assert report.failed[tenant["id"]].startswith("billing_period_open")
    with pytest.raises(Exception) as caught:
        await bill_tasks.close_period(app.state.db, settings, "2026-13")
    assert getattr(caught.value, "code", None) == "period_invalid"


async def test_the_issuer_does_not_bill_itself(app, client, new_tenant, operator_headers, settings):
    issuer, issuer_headers, _ = await make_issuer(client, new_tenant, operator_headers)
    await cdf_plan(client, operator_headers, issuer["id"])
    p1, _, _ = periods()
    assert issuer["id"] not in await bill_tasks.billed_tenants(app.state.db)
    await use(client, issuer_headers, "self", "api_calls", "4", at(p1, 2))
    report = await bill_tasks.close_period(app.state.db, settings, p1, tenant_ids=[issuer["id"]], finalize_now=True)
    assert report.failed[issuer["id"]].startswith("billing_issuer_is_billed")


async def test_platform_binding_reads_the_revenue(app, client, new_tenant, operator_headers, settings):
    await make_issuer(client, new_tenant, operator_headers)
    tenant, headers = await new_tenant("Revenue SARL", "V1234567")
    await cdf_plan(client, operator_headers, tenant["id"])
    p1, _, _ = periods()
    await use(client, headers, "bytes", "network_bytes", "40", at(p1, 7))  # 40 x 0.25 = 10.00
    await bill_tasks.close_period(app.state.db, settings, p1, tenant_ids=[tenant["id"]], finalize_now=True)
    r = await client.get(f"/v1/ops/billing/revenue?period={p1}", headers=operator_headers)
    assert r.status_code == 200, r.text
    row = next(x for x in r.json()["data"] if x["tenant_id"] == tenant["id"])
    assert (row["tenant_name"], row["total"], row["status"], row["invoice_total"], row["invoice_currency"]) == \
        ("Revenue SARL", "10.00", "sealed", "11.60", "CDF")
    assert (await client.get("/v1/ops/billing/revenue?period=2026-1", headers=operator_headers)).status_code == 422
    async with app.state.db.transaction(readonly=True) as session:
        await bind_platform(session)
        assert (await session.execute(select(func.count()).select_from(Invoice))).scalar_one() > 0


async def test_the_portability_export_carries_usage_events_and_bills(app, client, new_tenant, operator_headers,
                                                                    settings, tmp_path):
    await make_issuer(client, new_tenant, operator_headers)
    tenant, headers = await new_tenant("Portable SARL", "M1234567")
    await cdf_plan(client, operator_headers, tenant["id"])
    p1, _, _ = periods()
    await use(client, headers, "kept", "api_calls", "400", at(p1, 3))
    await use(client, headers, "dropped", "api_calls", "40", at(p1, 4))
    await void(client, headers, "dropped")
    sealed = (await bill_tasks.close_period(app.state.db, settings, p1, tenant_ids=[tenant["id"]],
                                            finalize_now=True)).bills[tenant["id"]]
    async with app.state.db.transaction(readonly=True) as session:
        await bind_tenant(session, tenant["id"])
        snap = Snapshot(tenant["id"], "tenant", await SnapshotRepository(session).log_size(), 10**9, utcnow())
        bag = Bag(tmp_path / "bag")
        try:
            counts = await write_payload(session, settings, snap, bag)
        finally:
            bag.close_all()
    assert (counts["usage_events"], counts["bills"]) == (2, 1)
    data = tmp_path / "bag" / "data"
    events = {e["event_id"]: e for e in map(json.loads, (data / "usage_events.ndjson").read_text().splitlines())}
    assert events["kept"]["voided_at"] is None and events["dropped"]["voided_at"] is not None
    assert events["kept"]["quantity"] == "400" and events["kept"]["source"] == "api"
    [bill] = map(json.loads, (data / "bills.ndjson").read_text().splitlines())
    usage = (await client.get(f"/v1/billing/invoices/{sealed['id']}/usage", headers=headers)).json()
    assert (bill["id"], bill["invoice_id"], bill["total"]) == (sealed["id"], sealed["invoice_id"], "100.00")
    assert bill["lines"] == usage["data"] and bill["lines"][0]["event_count"] == 3  # 2 events and 1 void
