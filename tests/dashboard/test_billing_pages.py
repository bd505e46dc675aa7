"""The Usage & billing pages of both consoles over plain HTTP (SQLite and PostgreSQL): the owner's usage
chart, estimate, quotas, bills (with the console's own PDF route) and anomalies to acknowledge or dismiss
through CSRF-protected forms; who may see and act; the operator's revenue per tenant and open anomalies."""
from __future__ import annotations

import re
import uuid
from datetime import timedelta
from decimal import Decimal

from stalela.billing import anomaly_tasks, bill_service
from stalela.billing.bill_models import Bill
from stalela.dashboard.billing_endpoints import grouped
from stalela.dashboard.charts import _nice_max_decimal, quantity_label
from stalela.db.base import utcnow
from stalela.errors import Conflict, NotFound
from stalela.kit.clock import rfc3339
from stalela.kit.ids import new_id
from stalela.tenancy.context import bind_tenant
from tests.billing.anomaly_support import DAY, spike_series, write_usage
from tests.dashboard.conftest import Browser, email, make_user
from tests.dashboard.test_ops import operator
from tests.support.invoices import sample_invoice

NB = "\u202f"


async def _capped_plan(client, operator_headers, tenant_id: str, cap: int) -> str:  # noqa: ANN001
    plan_id = f"console-{uuid.uuid4().hex[:10]}"
    r = await client.post("/v1/ops/billing/plans", json={"id": plan_id, "name": "Console", "currency": "CDF",
                                                         "quotas": {"invoices_sealed": cap}}, headers=operator_headers)
    assert r.status_code == 201, r.text
    r = await client.post(f"/v1/ops/billing/plans/{plan_id}/rate-cards", headers=operator_headers, json={
        "effective_from": "2026-01-01", "prices": {"cpu_seconds": {"unit_price": "40"}}})
    assert r.status_code == 201, r.text
    r = await client.put(f"/v1/ops/billing/tenants/{tenant_id}", json={"plan_id": plan_id}, headers=operator_headers)
    assert r.status_code == 200, r.text
    return plan_id


async def _issuer_invoice(client, new_tenant) -> tuple[dict, dict]:  # noqa: ANN001
    """The platform's issuing tenant and one invoice it sealed (what a sealed bill names)."""
    tenant, headers = await new_tenant("Stalela Platform SA", "P0000001")
    outlet = (await client.post("/v1/outlets", json={"code": "BILL", "name": "Billing"}, headers=headers)).json()
    r = await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)
    assert r.status_code == 201, r.text
    return {**tenant, "outlet_id": outlet["id"]}, r.json()


async def _bill(app, tenant_id: str, period: str, status: str, total_cents: int,
                issuer_id: str | None = None, invoice_id: str | None = None) -> str:  # noqa: ANN001
    """A bill row as the cycle leaves it (the cycle itself is the bill slice's to test)."""
    async with app.state.db.transaction() as session:
        await bind_tenant(session, tenant_id)
        bill = Bill(tenant_id=tenant_id, id=new_id("bill"), period=period, status=status, currency="CDF",
                    total_cents=total_cents, lines="[]", finalize_after=utcnow(), issuer_tenant_id=issuer_id,
                    invoice_id=invoice_id, invoice_total_cents=total_cents * 116 // 100 if invoice_id else None,
                    sealed_at=utcnow() if status != "draft" else None)
        session.add(bill)
    return bill.id


async def _anomalies(app, tenant_id: str, *resources: str) -> list[dict]:
    for resource in resources:
        await write_usage(app.state.db, tenant_id, resource, spike_series(spike=50000))
    return await anomaly_tasks.detect_all(app.state.db, app.state.settings, DAY, tenant_id=tenant_id)


def _row(html: str, testid: str) -> str:
    found = re.search(rf'data-testid="{testid}".*?</table>', html, re.S)
    assert found, f"no {testid} table"
    return found.group(0)


async def test_the_owner_sees_usage_quotas_bills_and_anomalies(app, client, org, owner, new_tenant, operator_headers):
    tenant_id = org["tenant"]["id"]
    await _capped_plan(client, operator_headers, tenant_id, cap=4)
    r = await client.post("/v1/invoices", json=sample_invoice(org["outlet"]["id"]), headers=org["key"])
    assert r.status_code == 201, r.text
    now = utcnow()
    for i, quantity in enumerate(("12345.5", "7")):
        r = await client.post("/v1/usage/events", headers=org["key"], json={
            "event_id": f"cpu-{i}", "resource": "cpu_seconds", "quantity": quantity,
            "occurred_at": rfc3339(now - timedelta(days=i))})
        assert r.status_code == 201, r.text
    issuer, invoice = await _issuer_invoice(client, new_tenant)
    sealed = await _bill(app, tenant_id, "2026-10", "sealed", 1964029, issuer["id"], invoice["id"])
    await _bill(app, tenant_id, "2026-11", "draft", 0)
    found = await _anomalies(app, tenant_id, "api_calls")

    page = await owner.get("/app/billing?resource=cpu_seconds")
    assert page.status_code == 200, page.text[:500]
    html = page.text
    assert 'href="/app/billing" aria-current="page"' in html
    # The chart and its table: cpu_seconds at its scale (6 decimals), thousands by a narrow no-break space.
    assert '<svg class="chart"' in html and 'data-testid="usage-chart"' in html and "<rect" in html
    usage = _row(html, "usage-table")
    assert f"12{NB}345.500000" in usage and "7.000000" in usage and f"12{NB}352.500000" in usage
    assert ">0.000000<" in usage  # a day without usage, at the resource's scale too
    assert '<option value="cpu_seconds" selected>' in html
    # Quotas: 1 of 4 invoices sealed this month, with a bar and the reset time.
    quotas = _row(html, "quotas")
    assert "invoices_sealed" in quotas and 'value="25"' in quotas and "25&nbsp;%" in quotas
    # In the outlet's zone (Kinshasa, UTC+1): midnight UTC on the 1st is 1 AM there.
    assert re.search(r"The caps reset at \w{3} 1, \d{4}, 1:00[\s\u202f]AM\.", html)
    # Bills: the sealed one with its fiscal number and the console's PDF link; the draft without either.
    bills = _row(html, "bills")
    assert "2026-10" in bills and f"19{NB}640.29&nbsp;CDF" in bills and invoice["fiscal_number"] in bills
    assert f'href="/app/billing/invoices/{sealed}/pdf"' in bills and "not sealed yet" in bills
    pdf = await owner.get(f"/app/billing/invoices/{sealed}/pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    # Anomalies: day, observed vs usual, score, impact in the plan's currency, the two buttons.
    anomalies = _row(html, "anomalies")
    [anomaly] = found
    assert DAY.isoformat() in anomalies and "api_calls" in anomalies and f"50{NB}000" in anomalies
    assert f"{anomaly['impact_eur']}&nbsp;CDF" in anomalies
    assert f'action="/app/billing/anomalies/{anomaly["id"]}/acknowledge"' in anomalies
    assert f'action="/app/billing/anomalies/{anomaly["id"]}/dismiss"' in anomalies
    # The estimate: its lines, or why there is none yet; never an error page.
    assert 'data-testid="estimate"' in html or 'data-testid="estimate-unavailable"' in html
    # Without a choice, the chart shows the first resource (registry order) with usage: api_calls here.
    page = await owner.get("/app/billing")
    assert '<option value="api_calls" selected>' in page.text
    # A resource that does not exist is a clear 422, not a 500.
    bad = await owner.get("/app/billing?resource=gpu_hours")
    assert bad.status_code == 422 and "gpu_hours" in bad.text
    assert (await owner.get("/app/billing?resource=Bad!")).status_code == 422
    # Another tenant's bill is not found, through the PDF route too; a draft has no PDF.
    assert (await owner.get(f"/app/billing/invoices/{new_id('bill')}/pdf")).status_code == 404


async def test_the_estimate_is_shown_with_its_lines_or_why_it_is_missing(app, org, owner, monkeypatch):
    async def estimate(session, now=None):  # noqa: ANN001
        return {"period": "2026-12", "currency": "CDF", "total": "19640.29", "lines": [
            {"resource": "cpu_seconds", "quantity": "1234567.5", "amount": "19640.29", "plan_id": "pro",
             "rate_card_version": 3},
            {"resource": "network_bytes", "quantity": "10", "amount": "0.00", "plan_id": None,
             "rate_card_version": None}]}

    monkeypatch.setattr(bill_service, "estimate", estimate)
    html = (await owner.get("/app/billing")).text
    table = _row(html, "estimate")
    assert "This month so far (2026-12)" in html and f"1{NB}234{NB}567.5" in table and "pro v3" in table
    assert "not priced" in table and f'data-testid="estimate-total">19{NB}640.29&nbsp;CDF' in table

    async def unavailable(session, now=None):  # noqa: ANN001
        raise Conflict("no rate card is in force", code="rate_card_not_in_force")

    monkeypatch.setattr(bill_service, "estimate", unavailable)
    page = await owner.get("/app/billing")
    assert page.status_code == 200 and 'data-testid="estimate-unavailable"' in page.text
    assert "rate_card_not_in_force" in page.text


async def test_acknowledge_and_dismiss_through_the_form(app, org, owner):
    first, second = await _anomalies(app, org["tenant"]["id"], "api_calls", "network_bytes")
    await owner.get("/app/billing")
    # CSRF: without the token, or from another site, nothing changes.
    refused = await owner.post(f"/app/billing/anomalies/{first['id']}/acknowledge", csrf=False)
    assert refused.status_code == 403 and "reload the page" in refused.text
    foreign = await owner.post(f"/app/billing/anomalies/{first['id']}/acknowledge",
                               headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403
    assert f'/app/billing/anomalies/{first["id"]}/acknowledge' in (await owner.get("/app/billing")).text

    r = await owner.post(f"/app/billing/anomalies/{first['id']}/acknowledge")
    assert r.status_code == 303 and r.headers["location"] == (
        f"/app/billing?done=acknowledged&anomaly={first['id']}#anomalies")
    page = await owner.get(r.headers["location"].split("#")[0])
    assert f"Anomaly <code>{first['id']}</code> acknowledged." in page.text
    table = _row(page.text, "anomalies")
    assert f'{first["id"]}/acknowledge' not in table and f'{first["id"]}/dismiss' in table  # acknowledged: dismiss only
    assert "acknowledged" in table
    r = await owner.post(f"/app/billing/anomalies/{first['id']}/dismiss")
    assert r.status_code == 303
    r = await owner.post(f"/app/billing/anomalies/{second['id']}/dismiss")
    assert r.status_code == 303
    page = await owner.get("/app/billing?done=dismissed&anomaly=" + second["id"])
    assert "No anomaly to look at." in page.text and "dismissed." in page.text
    # A dismissed anomaly cannot be acknowledged (the API's 409), an unknown action is 404.
    again = await owner.post(f"/app/billing/anomalies/{first['id']}/acknowledge")
    assert again.status_code == 409 and "cannot become acknowledged" in again.text
    assert (await owner.post(f"/app/billing/anomalies/{first['id']}/reopen")).status_code == 404
    # A notice names only what the query says, and only a known action.
    page = await owner.get("/app/billing?done=<script>&anomaly=x")
    assert 'data-testid="anomaly-done"' not in page.text and "<script>&" not in page.text


async def test_another_tenants_anomaly_is_not_found(app, org, owner, new_tenant):
    other, _ = await new_tenant("Autre SARL", "B7654321Y")
    [theirs] = await _anomalies(app, other["id"], "api_calls")
    await owner.get("/app/billing")
    for action in ("acknowledge", "dismiss"):
        r = await owner.post(f"/app/billing/anomalies/{theirs['id']}/{action}")
        assert r.status_code == 404, r.text[:300]
    assert theirs["id"] not in (await owner.get("/app/billing")).text
    async with app.state.db.transaction(readonly=True) as session:
        await bind_tenant(session, other["id"])
        from stalela.billing import anomaly_service

        assert (await anomaly_service.get_anomaly(session, theirs["id"]))["status"] == "open"


async def test_who_sees_the_page_and_who_acts(app, org, owner, cashier):
    [anomaly] = await _anomalies(app, org["tenant"]["id"], "api_calls")
    # A cashier neither sees the link nor opens the page, the PDF or the forms.
    assert 'href="/app/billing"' not in (await cashier.get("/app")).text
    assert (await cashier.get("/app/billing")).status_code == 403
    assert (await cashier.get(f"/app/billing/invoices/{new_id('bill')}/pdf")).status_code == 403
    assert (await cashier.post(f"/app/billing/anomalies/{anomaly['id']}/acknowledge")).status_code == 403
    # An auditor reads everything but acts on nothing.
    await make_user(app, org, email(org, "auditor"), "auditor")
    auditor = Browser(app)
    try:
        await auditor.login(email(org, "auditor"))
        page = await auditor.get("/app/billing")
        assert page.status_code == 200 and 'href="/app/billing"' in page.text and anomaly["id"] not in page.text
        assert "api_calls" in _row(page.text, "anomalies")
        assert (await auditor.post(f"/app/billing/anomalies/{anomaly['id']}/acknowledge")).status_code == 403
    finally:
        await auditor.aclose()
    # An accountant acts.
    await make_user(app, org, email(org, "accountant"), "accountant")
    accountant = Browser(app)
    try:
        await accountant.login(email(org, "accountant"))
        await accountant.get("/app/billing")
        assert (await accountant.post(f"/app/billing/anomalies/{anomaly['id']}/acknowledge")).status_code == 303
    finally:
        await accountant.aclose()
    # Signed out: the login page, with the way back.
    anonymous = Browser(app)
    try:
        r = await anonymous.get("/app/billing")
        assert r.status_code == 303 and r.headers["location"] == "/app/login?next=/app/billing"
    finally:
        await anonymous.aclose()


async def test_the_operator_sees_revenue_per_tenant_and_open_anomalies(app, client, org, new_tenant,
                                                                        operator_headers, monkeypatch):
    tenant_id = org["tenant"]["id"]
    issuer, invoice = await _issuer_invoice(client, new_tenant)
    period = f"20{uuid.uuid4().int % 70 + 10:02d}-0{uuid.uuid4().int % 9 + 1}"  # a period no other test bills
    await _bill(app, tenant_id, period, "sealed", 1964029, issuer["id"], invoice["id"])
    other, _ = await new_tenant("Autre SARL", "B7654321Y")
    await _bill(app, other["id"], period, "draft", 150)
    [anomaly] = await _anomalies(app, other["id"], "api_calls")
    r = await client.put("/v1/ops/billing/issuer", json={"tenant_id": issuer["id"], "outlet_id": issuer["outlet_id"]},
                         headers=operator_headers)
    assert r.status_code == 200, r.text

    ops = await operator(app)
    try:
        page = await ops.get(f"/ops/billing?period={period}")
        assert page.status_code == 200, page.text[:500]
        assert 'href="/ops/billing" aria-current="page"' in page.text
        revenue = _row(page.text, "revenue")
        assert "Boutique Kin SARL" in revenue and "Autre SARL" in revenue and invoice["id"] in revenue
        assert f"19{NB}640.29&nbsp;CDF" in revenue and "draft" in revenue and "sealed" in revenue
        assert f"22{NB}782.73&nbsp;CDF" in revenue  # the invoiced total, tax included
        assert f'data-testid="revenue-sum">19{NB}641.79&nbsp;CDF' in revenue
        assert revenue.index("Boutique Kin SARL") < revenue.index("Autre SARL")  # largest first
        assert f"<code>{issuer['id']}</code>" in page.text and issuer["outlet_id"] in page.text
        anomalies = _row(page.text, "ops-anomalies")
        assert other["id"] in anomalies or "newest" in page.text
        # Default: the previous month. A malformed period is a 422 page.
        default = await ops.get("/ops/billing")
        from stalela.billing.bill_lines import period_of, previous_period

        assert f"Revenue per tenant, {previous_period(period_of(utcnow()))}" in default.text
        assert (await ops.get("/ops/billing?period=2026-13")).status_code == 422
        # Without an issuer, the page says how to configure one.

        async def no_issuer(session):  # noqa: ANN001
            raise NotFound("no billing issuer is configured", code="billing_issuer_not_found")

        monkeypatch.setattr(bill_service, "get_issuer", no_issuer)
        page = await ops.get(f"/ops/billing?period={period}")
        assert "stalela billing issuer --tenant T --outlet O" in page.text
        # A draft past its grace that the cycle could not seal shows why (the bill records the reason).

        async def revenue(session, period):  # noqa: ANN001
            return [{"tenant_id": tenant_id, "tenant_name": "Boutique Kin SARL", "id": "bill_x", "period": period,
                     "status": "draft", "total": "1234.50", "currency": "EUR", "invoice_id": None,
                     "invoice_total": None, "invoice_currency": None,
                     "pending_reason": "billing_exchange_rate_missing: no EUR/CDF rate for this period"}]

        monkeypatch.setattr(bill_service, "revenue", revenue)
        revenue_table = _row((await ops.get(f"/ops/billing?period={period}")).text, "revenue")
        assert 'data-testid="pending-reason">billing_exchange_rate_missing: no EUR/CDF rate' in revenue_table
        assert f"1{NB}234.50&nbsp;EUR" in revenue_table
    finally:
        await ops.aclose()
    # The merchant session does not open the operations console.
    assert anomaly["tenant_id"] == other["id"]
    b = Browser(app)
    try:
        assert (await b.get("/ops/billing")).headers["location"].startswith("/ops/login")
    finally:
        await b.aclose()



def test_quantities_are_grouped_and_the_chart_axis_is_exact():
    assert grouped("19640.29") == f"19{NB}640.29" and grouped("-1234567") == f"-1{NB}234{NB}567"
    assert grouped(Decimal("0.000000")) == "0.000000" and grouped("999") == "999" and grouped(None) == "—"
    assert [_nice_max_decimal(Decimal(v)) for v in ("0", "0.37", "1", "12345.5", "100")] == [
        Decimal(1), Decimal("0.5"), Decimal(1), Decimal(20000), Decimal(100)]
    assert [quantity_label(Decimal(v)) for v in ("20000", "1500000", "0.125", "0.3333333", "5000000000", "0")] == [
        "20k", "1.5M", "0.125", "0.333", "5G", "0"]
