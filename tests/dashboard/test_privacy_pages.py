"""The privacy pages of both consoles over plain HTTP: the owner files and follows erasure requests, the
operator sees every tenant's open ones and offboardings; nobody else sees them."""
from __future__ import annotations

import re

import pytest

from stalela.outbox.dispatcher import Dispatcher
from tests.dashboard.test_admin_pages import set_language
from tests.dashboard.test_ops import operator
from tests.support.invoices import sample_invoice


@pytest.fixture(autouse=True)
async def english(app, org):  # noqa: ANN001
    """These pages' English wording is checked: the organisation speaks English (a DRC one would be French)."""
    await set_language(app, org, lang="en")


async def test_owner_files_an_erasure_and_the_operator_sees_it_until_done(app, client, org, owner, cashier, settings):
    buyer = {"type": "PP", "name": "Ruth Ilunga", "email": "ruth@example.cd"}
    r = await client.post("/v1/invoices", json=sample_invoice(org["outlet"]["id"], buyer=buyer), headers=org["key"])
    assert r.status_code == 201
    page = await owner.get("/app/privacy")
    assert page.status_code == 200 and "No request yet." in page.text and 'href="/app/privacy"' in page.text
    bad = await owner.post("/app/privacy/erasure-requests", {"email": "", "tax_id": "", "reference": ""})
    assert bad.status_code == 422  # a subject is required
    filed = await owner.post("/app/privacy/erasure-requests", {"email": "ruth@example.cd"})
    assert filed.status_code == 303 and filed.headers["location"].startswith("/app/privacy?filed=er_")
    request_id = filed.headers["location"].split("=", 1)[1]
    page = await owner.get(filed.headers["location"])
    assert request_id in page.text and "pending" in page.text and "ruth@example.cd" not in page.text
    # The operator's view lists it with its due date, then no more once processed.
    ops = await operator(app)
    view = await ops.get("/ops/privacy")
    assert view.status_code == 200 and request_id in view.text and org["tenant"]["id"] in view.text
    dispatcher = Dispatcher(app.state.db, settings)
    try:
        while await dispatcher.run_once():
            pass
    finally:
        await dispatcher.close()
    assert request_id not in (await ops.get("/ops/privacy")).text
    page = await owner.get("/app/privacy")
    assert "completed" in page.text and "buyer_on_sealed_invoices" in page.text and "2036-12-31" in page.text
    assert '<span data-category="buyer_on_sealed_invoices">the buyer on sealed invoices</span>' in page.text
    await ops.aclose()
    # A cashier neither sees the page nor files a request.
    assert (await cashier.get("/app/privacy")).status_code == 403
    assert 'href="/app/privacy"' not in (await cashier.get("/app")).text
    assert (await cashier.post("/app/privacy/erasure-requests", {"email": "x@example.cd"})).status_code == 403


async def test_owner_exports_the_tenant_from_the_console(app, org, owner, settings):
    page = await owner.get("/app/privacy")
    assert "No export yet." in page.text
    r = await owner.post("/app/privacy/exports", {"pdfs": "on"})
    assert r.status_code == 303 and r.headers["location"].startswith("/app/privacy?exported=pex_")
    dispatcher = Dispatcher(app.state.db, settings)
    try:
        while await dispatcher.run_once():
            pass
    finally:
        await dispatcher.close()
    page = await owner.get("/app/privacy")
    link = re.search(r'href="(https?://[^"]+/v1/privacy/exports/pex_[^"]+)"', page.text)
    assert link and "ready" in page.text
    path = link.group(1).split("://", 1)[1].split("/", 1)[1].replace("&amp;", "&")
    archive = await owner.http.get("/" + path)
    assert archive.status_code == 200 and archive.headers["content-type"] == "application/gzip"
