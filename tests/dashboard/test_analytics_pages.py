"""The console's Analytics page and the home page's revenue trend over plain HTTP (SQLite and PostgreSQL): the
figures are the API's for the same window, charts drawn on the server, CSV downloads, who may see them, and
the page in the tenant's language."""
from __future__ import annotations

import csv
import io

import pytest

from stalela.analytics import service as analytics
from tests.dashboard.conftest import Browser, email, make_user
from tests.dashboard.test_admin_pages import set_language
from tests.support.invoices import sample_invoice

BUYER = {"type": "PM", "name": "Kin Marché SARL", "tax_id": "A7654321M"}


@pytest.fixture(autouse=True)
async def english(app, org):  # noqa: ANN001
    await set_language(app, org, lang="en")
    analytics.cache.clear()


async def _sales(client, org) -> list[dict]:  # noqa: ANN001
    out = []
    for buyer in (BUYER, BUYER, None):
        r = await client.post("/v1/invoices", json=sample_invoice(org["outlet"]["id"], **({"buyer": buyer} if buyer else {})),
                              headers=org["key"])
        assert r.status_code == 201, r.text
        out.append(r.json())
    return out


async def test_the_page_shows_the_apis_figures_with_charts_and_csv(client, org, owner):
    await _sales(client, org)
    page = await owner.get("/app/analytics")
    assert page.status_code == 200, page.text[:500]
    html = page.text
    api = (await client.get("/v1/analytics/summary", headers=org["key"])).json()
    assert api["totals"][0]["invoices"] == 3
    assert 'data-testid="invoices-cdf">3<' in html
    assert 'data-testid="revenue-chart-cdf"' in html and "<svg" in html  # drawn on the server, no script
    for table in ("periods-table", "taxes-table", "types-table", "outlets-table", "buyers-table", "authority-table",
                  "forecast-table"):
        assert f'data-testid="{table}"' in html, table
    assert "Kin Marché SARL" in html and 'href="/app/analytics"' in html  # the nav link
    # Each table downloads as CSV, with the page's window.
    for name in ("summary", "taxes", "types", "outlets", "buyers", "authority", "forecast"):
        assert f'data-testid="csv-{name}"' in html
        r = await owner.get(f"/app/analytics/{name}.csv", params={"from": api["from"], "to": api["to"]})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), (name, r.text[:300])
        rows = list(csv.DictReader(io.StringIO(r.text)))
        if name == "buyers":
            assert rows[0]["name"] == "Kin Marché SARL" and rows[0]["invoices"] == "2"
        if name == "summary":
            assert sum(int(row["invoices"]) for row in rows) == 3
    assert (await owner.get("/app/analytics/secrets.csv")).status_code == 404
    # Weeks, one outlet.
    weekly = await owner.get("/app/analytics", params={"interval": "week", "outlet_id": org["outlet"]["id"]})
    assert weekly.status_code == 200 and 'value="week" selected' in weekly.text
    bad = await owner.get("/app/analytics", params={"interval": "year"})
    assert bad.status_code == 422


async def test_home_shows_the_revenue_trend_to_who_may_read_reports(app, client, org, owner, cashier):
    await _sales(client, org)
    home = await owner.get("/app")
    assert 'data-testid="home-trend"' in home.text and 'data-testid="home-trend-cdf"' in home.text
    assert 'href="/app/analytics"' in home.text
    cashier_home = await cashier.get("/app")
    assert cashier_home.status_code == 200 and 'data-testid="home-trend"' not in cashier_home.text
    assert 'href="/app/analytics"' not in cashier_home.text
    assert (await cashier.get("/app/analytics")).status_code == 403
    assert (await cashier.get("/app/analytics/summary.csv")).status_code == 403


async def test_the_page_speaks_the_tenants_language(app, client, org):
    await set_language(app, org, lang="fr")
    await make_user(app, org, email(org, "comptable"), "accountant")
    b = Browser(app)
    try:
        await b.login(email(org, "comptable"))
        page = await b.get("/app/analytics")
        assert page.status_code == 200
        assert "Analyses" in page.text and "Meilleurs clients" in page.text and "Télécharger le CSV" in page.text
    finally:
        await b.aclose()
