"""The monthly cycle end to end through the command line: real usage on the seeded EUR plan, the
operator's exchange rate, ``stalela billing close`` sealing a CDF invoice of the issuer that verifies, a
tenant recomputing its bill from its own event export; and a billing run killed (``os._exit(137)``)
between the draft and the seal, and right after the seal, then re-run."""
from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from urllib.parse import urlencode

from sqlalchemy import select

from stalela.billing import bill_lines as bl
from stalela.billing import rating
from stalela.billing.bill_repository import BillRepository
from stalela.billing.usage_math import day_start, days, gauge_day
from stalela.fiscal.invoices.models import Invoice
from stalela.tenancy.context import bind_tenant
from tests.billing.bill_support import OPS, RATE, at, cdf_plan, make_issuer, periods, use, void
from tests.billing.bill_support import settings  # noqa: F401  (no API-call metering in these tests)
from tests.support.cli import cli_in

GB = 10**9


async def _events(client, headers, period: str) -> list[dict]:  # noqa: ANN001
    """The tenant's export of the period, every page."""
    start, end = (day_start(d).isoformat() for d in bl.period_bounds(period))
    out, after = [], None
    while True:
        query = {"from": start, "to": end, "limit": 100, **({"starting_after": after} if after else {})}
        page = (await client.get(f"/v1/usage/events?{urlencode(query)}", headers=headers)).json()
        out += page["data"]
        if not page["has_more"]:
            return out
        after = page["data"][-1]["id"]


def _day(moment: str) -> str:
    return datetime.fromisoformat(moment.replace("Z", "+00:00")).date().isoformat()


async def test_cli_cycle_seals_a_converted_invoice_the_tenant_can_recompute(app, client, new_tenant, operator_headers,
                                                                             settings, database_url):
    issuer, _, outlet = await make_issuer(client, new_tenant, operator_headers)
    tenant, headers = await new_tenant("Recompute SARL", "K1234567")  # on the default plan, priced in EUR
    _, p2, _ = periods()
    # Counter: 150,000 API calls (100,000 free, then 0.10 EUR per 1,000: 5.00), one more sent twice and voided.
    for event_id, quantity, day in (("calls-a", "60000", 2), ("calls-b", "50000", 2), ("calls-c", "40000", 10),
                                    ("calls-x", "10000", 10)):
        await use(client, headers, event_id, "api_calls", quantity, at(p2, day, 9))
    await void(client, headers, "calls-x")
    # Gauge: 40 GB stored from the first day, 80 GB from the 16th (time-weighted, priced per GB-day).
    await use(client, headers, "disk-1", "storage_bytes", str(40 * GB), at(p2, 1))
    await use(client, headers, "disk-2", "storage_bytes", str(80 * GB), at(p2, 16))

    cli = cli_in(settings.data_dir, database_url)
    rates = cli("billing", "exchange-rate", "--period", p2, "--currency", "EUR", "--rate", RATE, "--json")
    assert any((r["currency"], r["invoice_currency"], r["rate"]) == ("EUR", "CDF", RATE) for r in rates["data"])
    report = cli("billing", "close", "--period", p2, "--finalize-now", "--tenant", tenant["id"], "--json")
    summary = report["bills"][tenant["id"]]
    assert report["failed"] == {} and (summary["status"], summary["currency"]) == ("sealed", "EUR")
    again = cli("billing", "close", "--period", p2, "--finalize-now", "--tenant", tenant["id"], "--json")
    assert again["bills"][tenant["id"]] == summary  # idempotent

    bill = (await client.get(f"/v1/billing/invoices/{summary['id']}", headers=headers)).json()
    invoice = bill["invoice"]
    assert (invoice["tenant_id"], invoice["outlet_id"], invoice["currency"]) == (issuer["id"], outlet["id"], "CDF")
    assert (invoice["buyer"]["name"], invoice["buyer"]["tax_id"]) == ("Recompute SARL", "K1234567")
    assert (bill["invoice_currency"], bill["exchange_rate"]) == ("CDF", RATE)
    lines = {ln["resource"]: ln for ln in bill["lines"]}
    assert lines["api_calls"]["amount"] == "5.00" and set(lines) == {"api_calls", "storage_bytes"}
    # The sealed CDF lines are the rated EUR lines x the rate, each rounded once.
    assert [Decimal(ln["unit_price"]) for ln in invoice["lines"]] == \
        [bl.convert(Decimal(lines[r]["amount"]), Decimal(RATE)) for r in ("api_calls", "storage_bytes")]
    assert Decimal(bill["total"]) == sum(Decimal(ln["amount"]) for ln in bill["lines"])
    assert f"5.00 EUR × {RATE} = 15251.25 CDF" in invoice["lines"][0]["description"]
    assert "VALID" in cli("verify", "--database-url", database_url, "--tenant", issuer["id"])["out"]

    # Recompute the bill from the tenant's own export, as docs/billing.md tells it to.
    usage = {ln["resource"]: ln for ln in
             (await client.get(f"/v1/billing/invoices/{summary['id']}/usage", headers=headers)).json()["data"]}
    events = await _events(client, headers, p2)
    card = (await client.get(f"{OPS}/plans/default/rate-cards/{usage['api_calls']['rate_card_version']}",
                             headers=operator_headers)).json()
    view = rating.RateCardView("default", card["version"], "EUR", card["effective_from"],
                               {k: rating.PriceEntry.from_json(k, v) for k, v in card["prices"].items()})
    for resource, line in usage.items():
        mine = [e for e in events if e["resource"] == resource]
        ids = sorted([e["event_id"] for e in mine] + [f"void:{e['event_id']}" for e in mine if e["voided_at"]])
        assert line["events_sha256"] == hashlib.sha256("".join(i + "\n" for i in ids).encode()).hexdigest()
        assert line["event_count"] == len(ids)
        assert Decimal(line["quantity"]) == sum(Decimal(d["quantity"]) for d in line["days"])
        assert rating.cost_line(view, resource, Decimal(line["quantity"])).amount == Decimal(line["amount"])
    per_day: dict[str, Decimal] = defaultdict(Decimal)
    for e in events:
        if e["resource"] == "api_calls" and not e["voided_at"]:
            per_day[_day(e["occurred_at"])] += Decimal(e["quantity"])
    assert {d["day"]: Decimal(d["quantity"]) for d in usage["api_calls"]["days"]} == per_day
    samples = sorted((datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")), int(e["quantity"]))
                     for e in events if e["resource"] == "storage_bytes")
    start, end = bl.period_bounds(p2)
    carried, recomputed = None, {}
    for day in days(start, end):
        todays = [(t, q) for t, q in samples if t.date() == day]
        recomputed[day.isoformat()] = Decimal(gauge_day(day, carried, todays))
        carried = todays[-1][1] if todays else carried
    assert {d["day"]: Decimal(d["quantity"]) for d in usage["storage_bytes"]["days"]} == recomputed
    gb_days = sum(recomputed.values()) / GB
    assert lines["storage_bytes"]["amount"] == str(bl.convert((gb_days - 30) * Decimal("0.0008"), Decimal(1)))

    # The rate a sealed bill used is immutable, through the CLI too.
    refused = cli("billing", "exchange-rate", "--period", p2, "--currency", "EUR", "--rate", "3100", code=1)
    assert "exchange_rate_in_use" in refused["out"]


async def test_a_billing_run_killed_between_draft_and_seal_and_after_the_seal(app, client, new_tenant,
                                                                               operator_headers, settings,
                                                                               database_url):
    db = app.state.db
    issuer, _, _ = await make_issuer(client, new_tenant, operator_headers)
    first, first_headers = await new_tenant("Killed SARL", "KA123456")
    second, second_headers = await new_tenant("Survivor SARL", "KB123456")
    await cdf_plan(client, operator_headers, first["id"], second["id"])
    p1, _, _ = periods()
    await use(client, first_headers, "calls", "api_calls", "4000", at(p1, 5))   # 1000.00 CDF
    await use(client, second_headers, "calls", "api_calls", "800", at(p1, 6))   # 200.00 CDF
    cli = cli_in(settings.data_dir, database_url)
    close = ("billing", "close", "--period", p1, "--finalize-now", "--tenant", first["id"], "--tenant", second["id"])

    async def state() -> tuple[list[tuple[str | None, str | None]], list[Invoice]]:
        bills = []
        for tenant in (first, second):
            async with db.transaction(readonly=True) as session:
                await bind_tenant(session, tenant["id"])
                bill = await BillRepository(session).of_period(p1)
                bills.append((bill.status, bill.invoice_id) if bill else (None, None))
        async with db.transaction(readonly=True) as session:
            await bind_tenant(session, issuer["id"])
            sealed = list((await session.execute(select(Invoice).order_by(Invoice.counter))).scalars())
        return bills, sealed

    cli(*close, code=137, env={"STALELA_BILLING_EXIT_AT": "drafted"})
    bills, sealed = await state()
    assert bills == [("draft", None), (None, None)] and sealed == []  # the draft committed, then the kill

    cli(*close, code=137, env={"STALELA_BILLING_EXIT_AT": "sealed"})
    bills, sealed = await state()
    [invoice] = sealed
    assert bills == [("sealed", invoice.id), (None, None)]  # the bill and its invoice committed together

    report = cli(*close, "--json")
    assert report["failed"] == {}
    bills, sealed = await state()
    assert [inv.counter for inv in sealed] == [1, 2]  # one invoice per bill, gap-free
    assert bills == [("sealed", sealed[0].id), ("sealed", sealed[1].id)]
    assert [inv.total_cents for inv in sealed] == [116000, 23200]  # 1000.00 and 200.00 CDF + 16 % VAT
    assert "VALID" in cli("verify", "--database-url", database_url, "--tenant", issuer["id"])["out"]
