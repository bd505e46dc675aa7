"""The operations console over plain HTTP: operator sign-in, pipeline, dead letters, sync, tenants."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select, update

from stalela.fiscal.invoices.models import InvoiceSync
from stalela.outbox.models import OutboxEvent
from stalela.outbox.service import enqueue
from stalela.tenancy.context import bind_platform, bind_tenant
from tests.conftest import OPERATOR_TOKEN
from tests.dashboard.conftest import Browser
from tests.support.invoices import sample_invoice


async def operator(app) -> Browser:  # noqa: ANN001
    b = Browser(app)
    assert (await b.get("/ops")).headers["location"].startswith("/ops/login")
    page = await b.get("/ops/login")
    assert page.status_code == 200 and 'for="token"' in page.text
    # The sign-in forms carry a CSRF token of their own (login CSRF): without it, even the right token fails.
    assert (await b.post("/ops/login", {"token": OPERATOR_TOKEN}, csrf=False)).status_code == 403
    bad = await b.post("/ops/login", {"token": "nope"})
    assert bad.status_code == 401
    r = await b.post("/ops/login", {"token": OPERATOR_TOKEN})
    assert r.status_code == 303
    cookie = next(c.lower() for c in r.headers.get_list("set-cookie") if c.startswith("stalela_ops="))
    assert "httponly" in cookie and "path=/ops" in cookie and OPERATOR_TOKEN not in cookie
    return b


async def dead_letter(app, tenant_id: str) -> str:  # noqa: ANN001
    async with app.state.db.transaction() as session:
        await bind_tenant(session, tenant_id)
        event = enqueue(session, tenant_id, "webhooks.deliver", {"message_id": "whm_gone"})
        await session.flush()
        await bind_platform(session)
        await session.execute(update(OutboxEvent).where(OutboxEvent.id == event.id)
                              .values(status="dead", attempts=25, last_error="ConnectError: refused"))
        return event.id


async def test_operator_pipeline_and_dead_letter_replay(app, client, org):
    r = await client.post("/v1/invoices", json=sample_invoice(org["outlet"]["id"]), headers=org["key"])
    assert r.status_code == 201
    event_id = await dead_letter(app, org["tenant"]["id"])
    ops = await operator(app)
    page = await ops.get("/ops")
    assert page.status_code == 200 and "Seals per minute" in page.text and event_id in page.text
    assert "webhooks.deliver" in page.text
    r = await ops.post("/ops/dead/replay", [("ids", event_id)])
    assert r.status_code == 303 and r.headers["location"] == "/ops?replayed=1"
    page = await ops.get("/ops?replayed=1")
    assert "1 dead letter queued again." in page.text and f"<code>{event_id}</code>" not in page.text
    assert (await ops.post("/ops/dead/replay", [("ids", event_id)], csrf=False)).status_code == 403
    await ops.aclose()


async def test_operator_sync_tenants_and_suspension(app, client, org):
    for _ in range(2):
        await client.post("/v1/invoices", json=sample_invoice(org["outlet"]["id"]), headers=org["key"])
    ops = await operator(app)
    sync = await ops.get("/ops/sync")
    assert sync.status_code == 200 and "Boutique Kin SARL" in sync.text and "KIN1" in sync.text
    async with app.state.db.transaction() as session:  # the DGI acknowledged the first one
        await bind_tenant(session, org["tenant"]["id"])
        first = (await session.execute(select(InvoiceSync).order_by(InvoiceSync.invoice_id))).scalars().first()
        first.status = "acknowledged"
    row = (await ops.get("/ops/sync")).text.split(org["tenant"]["id"])[1].split("</tr>")[0]
    # One pending, none failed, and a last success: a time in UTC, not the dash of "never".
    assert re.search(r'<td class="num">1</td><td>[^<]+</td><td class="num">0</td><td>\w{3} \d{1,2}, \d{4}, [^<]+ UTC</td>', row), row
    tenants = await ops.get("/ops/tenants")
    assert org["tenant"]["id"] in tenants.text and "Webhook endpoint health" in tenants.text
    r = await ops.post(f"/ops/tenants/{org['tenant']['id']}/suspend")
    assert r.status_code == 303
    refused = await client.post("/v1/invoices", json=sample_invoice(org["outlet"]["id"]), headers=org["key"])
    assert refused.status_code == 403
    await ops.post(f"/ops/tenants/{org['tenant']['id']}/activate")
    ok = await client.post("/v1/invoices", json=sample_invoice(org["outlet"]["id"]), headers=org["key"])
    assert ok.status_code == 201
    await ops.aclose()


async def test_merchant_sessions_do_not_open_the_operations_console(owner):
    assert (await owner.get("/ops")).status_code == 303


async def test_pipeline_rates_from_metric_samples():
    from collections import deque

    from stalela.dashboard.pipeline import Sample, p95, rates

    assert p95({0.01: 50, 0.1: 100, float("inf"): 100}) == pytest.approx(0.01 + 0.09 * (95 - 50) / 50)
    history: deque = deque()
    first = Sample(at=100.0, sealed=10, requests=20, errors=0, seal_buckets={0.01: 10, float("inf"): 10})
    rates(first, history)
    later = Sample(at=160.0, sealed=70, requests=100, errors=4, seal_buckets={0.01: 40, 0.1: 70, float("inf"): 70})
    r = rates(later, history)
    assert round(r.seals_per_minute) == 60 and r.errors == 4 and r.requests == 80
    assert r.error_rate == 4 / 80 and r.seal_p95_ms is not None and 10 < r.seal_p95_ms <= 100


async def test_operator_sets_and_resets_a_tenants_api_limit(app, client, org):
    tenant_id = org["tenant"]["id"]
    ops = await operator(app)
    page = (await ops.get("/ops/tenants")).text
    assert re.search(rf'data-testid="tier-{tenant_id}" data-tier="shared">shared<', page)
    assert re.search(rf'data-testid="rate-{tenant_id}">50 /s <span class="muted">\(default\)', page)
    assert re.search(rf'data-testid="burst-{tenant_id}">burst 10,000 <span class="muted">\(default\)', page)

    r = await ops.post(f"/ops/tenants/{tenant_id}/limits", {"rate_limit_per_second": "2.5", "rate_limit_burst": "3"})
    assert r.status_code == 303 and r.headers["location"] == f"/ops/tenants?limits={tenant_id}"
    page = (await ops.get(r.headers["location"])).text
    assert f"API limit of {tenant_id} saved." in page
    assert re.search(rf'data-testid="rate-{tenant_id}">2.5 /s</span>', page)
    assert re.search(rf'data-testid="burst-{tenant_id}">burst 3</span>', page)
    answers = [await client.get("/v1/outlets", headers=org["key"]) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]

    # Bad input: the page again, the error beside the form with what was typed, nothing stored.
    for form, field in [({"rate_limit_per_second": "0.0001", "rate_limit_burst": "3"}, "rate_limit_per_second"),
                        ({"rate_limit_per_second": "abc", "rate_limit_burst": ""}, "rate_limit_per_second"),
                        ({"rate_limit_per_second": "", "rate_limit_burst": "-4"}, "rate_limit_burst"),
                        ({"rate_limit_per_second": "", "rate_limit_burst": "99999999999999"}, "rate_limit_burst"),
                        ({"rate_limit_per_second": "", "rate_limit_burst": "2000000"}, "rate_limit_burst")]:
        r = await ops.post(f"/ops/tenants/{tenant_id}/limits", form)
        assert r.status_code == 422, r.text[:300]
        assert 'role="alert"' in r.text and f'id="err-{tenant_id}"' in r.text
        typed = form[field]
        assert f'name="{field}" ' in r.text and f'value="{typed}" aria-invalid="true"' in r.text
    assert re.search(rf'data-testid="burst-{tenant_id}">burst 3</span>', (await ops.get("/ops/tenants")).text)
    assert (await ops.post(f"/ops/tenants/{tenant_id}/limits", {"rate_limit_burst": "5"}, csrf=False)).status_code == 403

    r = await ops.post(f"/ops/tenants/{tenant_id}/limits", {"reset": "1", "rate_limit_burst": "7"})
    assert r.status_code == 303
    page = (await ops.get("/ops/tenants")).text
    assert re.search(rf'data-testid="burst-{tenant_id}">burst 10,000 <span class="muted">\(default\)', page)
    assert (await client.get("/v1/outlets", headers=org["key"])).headers["ratelimit-limit"] == "10000"
    assert (await ops.post("/ops/tenants/ten_nope/limits", {"rate_limit_burst": "5"})).status_code == 404
    await ops.aclose()
