"""The Analytics page in a real browser: Debian's Chromium driven by Playwright against a real `stalela serve`
(the style of test_browser.py). The owner opens Analytics from the navigation, sees the revenue chart and the
tables, downloads a CSV and switches to weeks; the home page shows the revenue trend. Audited with axe-core.
Never downloads a browser: without /usr/bin/chromium (or the playwright package) the test skips and says why.
"""
from __future__ import annotations

import re
from datetime import date

import httpx

from stalela.analytics.periods import periods

from tests.dashboard import test_browser as console
from tests.dashboard.test_browser import ARGS, CHROMIUM, FINDINGS, OPERATOR, PASSWORD, _audit, _shot

pytestmark = console.pytestmark
server = console.server


def _setup_tenant(base: str) -> dict:
    """test_browser's tenant (two outlets, an owner, a few sealed invoices), speaking English (the wording read
    here; a DRC organisation defaults to French)."""
    org = console._setup_tenant(base)
    r = httpx.patch(f"{base}/v1/tenants/{org['tenant']['id']}", json={"locale": "en"}, timeout=30,
                    headers={"Authorization": f"Bearer {OPERATOR}"})
    assert r.status_code == 200, r.text
    return org


def test_analytics_in_chromium(server, tmp_path):
    base = server.base_url
    _setup_tenant(base)
    with console.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900}, accept_downloads=True)
            context.set_default_timeout(15_000)
            page = context.new_page()
            page.goto("/app/login")
            page.get_by_label("Email").fill("owner@kin.cd")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            # The home page's trend, then the page itself from the navigation.
            console.expect(page.get_by_test_id("home-trend-cdf")).to_be_visible()
            page.get_by_role("navigation", name="Main").get_by_role("link", name="Analytics").click()
            console.expect(page.get_by_role("heading", name="Analytics", exact=True)).to_be_visible()
            chart = page.get_by_test_id("revenue-chart-cdf")
            console.expect(chart).to_be_visible()
            console.expect(chart.locator("rect")).to_have_count(30)  # one bar per business day of the window
            console.expect(page.get_by_test_id("invoices-cdf")).to_have_text("6")
            console.expect(page.get_by_test_id("outlets-table").get_by_role("row")).to_have_count(3)
            _shot(page, "analytics")
            # A table as CSV: the same window as the page.
            with page.expect_download() as download:
                page.get_by_test_id("csv-summary").click()
            path = tmp_path / "summary.csv"
            download.value.save_as(path)
            lines = path.read_text().splitlines()
            assert lines[0] == "start,end,currency,invoices,credit_notes,sales,credited,revenue,vat" and len(lines) == 31
            # Weeks.
            page.get_by_label("Periods").select_option("week")
            page.get_by_role("button", name="Show").click()
            console.expect(page).to_have_url(re.compile(r"interval=week"))
            # The same 30 days, in ISO weeks clipped to them.
            first, last = (date.fromisoformat(page.get_by_label(n).input_value())
                           for n in ("First business day", "Last business day"))
            weeks = len(list(periods(first, last, "week")))
            console.expect(page.get_by_test_id("revenue-chart-cdf").locator("rect")).to_have_count(weeks)
            _audit(page, "analytics-weeks")
            context.close()
        finally:
            browser.close()
    assert not FINDINGS, "accessibility (axe-core):\n" + "\n".join(FINDINGS)
