"""The Usage & billing pages in a real browser: Debian's Chromium driven by Playwright against a real
`stalela serve` (the style of test_browser.py). The owner opens /app/billing, sees the usage chart, switches
resource and acknowledges an anomaly; the operator opens /ops/billing. Every screen is audited with axe-core.
Never downloads a browser: without /usr/bin/chromium (or the playwright package) the test skips and says why.
"""
from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx

from stalela.db.base import utcnow
from stalela.kit.clock import rfc3339
from tests.dashboard import test_browser as console
from tests.dashboard.test_browser import ARGS, CHROMIUM, FINDINGS, OPERATOR, PASSWORD, _audit, _shot

# The same skips (no Chromium, no Playwright) and the same kind of server (one for this module).
pytestmark = console.pytestmark
server = console.server


def _setup_tenant(base: str) -> dict:
    """test_browser's tenant (two outlets, an owner, a few sealed invoices) and some CPU usage of today."""
    org = console._setup_tenant(base)
    r = httpx.post(f"{base}/v1/usage/events", headers=org["key"], timeout=30, json={
        "event_id": "cpu-1", "resource": "cpu_seconds", "quantity": "12345.5", "occurred_at": rfc3339(utcnow())})
    assert r.status_code == 201, r.text
    return {"tenant_id": org["tenant"]["id"]}


def _anomaly(server, tenant_id: str) -> str:  # noqa: ANN001
    """A spike stored by the detection service on the server's database (no route creates one); and the
    organisation's language set to English, the wording this test reads (a DRC one defaults to French)."""
    from sqlalchemy import update

    from stalela.billing import anomaly_tasks
    from stalela.db.session import Database
    from stalela.tenancy.context import bind_platform
    from stalela.tenancy.models import Tenant
    from tests.billing.anomaly_support import DAY, spike_series, write_usage
    from tests.conftest import make_settings

    data_dir = Path(server.log_path).parent
    url = f"sqlite+aiosqlite:///{data_dir / 'stalela.db'}"

    async def run() -> str:
        db = Database(url)
        try:
            async with db.transaction() as session:
                await bind_platform(session)
                await session.execute(update(Tenant).where(Tenant.id == tenant_id).values(locale="en"))
            await write_usage(db, tenant_id, "api_calls", spike_series(spike=50000))
            [found] = await anomaly_tasks.detect_all(db, make_settings(url, data_dir), DAY, tenant_id=tenant_id)
            return found["id"]
        finally:
            await db.dispose()

    return asyncio.run(run())


def test_usage_and_billing_in_chromium(server):
    base = server.base_url
    org = _setup_tenant(base)
    # Before Playwright starts: its sync API runs an event loop in this thread.
    anomaly_id = _anomaly(server, org["tenant_id"])
    with console.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            _merchant(browser, base, anomaly_id)
            _operator(browser, base, org["tenant_id"])
        finally:
            browser.close()
    assert not FINDINGS, "accessibility (axe-core):\n" + "\n".join(FINDINGS)


def _merchant(browser, base: str, anomaly_id: str) -> None:  # noqa: ANN001
    context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto("/app/billing")
    console.expect(page).to_have_url(re.compile(r"/app/login"))
    page.get_by_label("Email").fill("owner@kin.cd")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    console.expect(page.get_by_role("heading", name="Usage & billing")).to_be_visible()  # back where it was asked
    page.goto("/app")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Usage & billing").click()
    console.expect(page.get_by_role("heading", name="Usage & billing")).to_be_visible()
    # The chart: an SVG with one bar per day, api_calls first (it has usage).
    chart = page.get_by_test_id("usage-chart")
    console.expect(chart).to_be_visible()
    console.expect(chart.locator("rect")).to_have_count(30)
    console.expect(page.get_by_label("Resource")).to_have_value("api_calls")
    page.get_by_label("Resource").select_option("cpu_seconds")
    page.get_by_role("button", name="Show").click()
    console.expect(page).to_have_url(re.compile(r"resource=cpu_seconds"))
    page.get_by_text("Show the figures as a table").click()
    console.expect(page.get_by_test_id("usage-table").get_by_role("cell", name="12,345.500000").first).to_be_visible()
    _shot(page, "billing")
    # Acknowledge the anomaly: a notice, and only Dismiss is left.
    page.get_by_role("button", name="Acknowledge the API calls anomaly of Nov 30, 2026").click()
    console.expect(page.get_by_test_id("anomaly-done")).to_contain_text(f"{anomaly_id} acknowledged")
    console.expect(page.get_by_role("button", name=re.compile("^Acknowledge"))).to_have_count(0)
    console.expect(page.get_by_role("button", name="Dismiss the API calls anomaly of Nov 30, 2026")).to_be_visible()
    _audit(page, "billing-acknowledged")
    context.close()


def _operator(browser, base: str, tenant_id: str) -> None:  # noqa: ANN001
    context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto("/ops")
    page.get_by_text("Sign in with the operator token (automation)").click()  # automation's way in
    page.get_by_label("Operator token").fill(OPERATOR)
    page.get_by_role("button", name="Sign in with the token").click()
    page.get_by_role("link", name="Billing").click()
    console.expect(page.get_by_role("heading", name="Billing", exact=True)).to_be_visible()
    console.expect(page.get_by_test_id("no-issuer")).to_contain_text("stalela billing issuer --tenant T --outlet O")
    console.expect(page.get_by_text("No open anomaly.")).to_be_visible()  # the tenant's was acknowledged
    _shot(page, "ops-billing")
    context.close()
