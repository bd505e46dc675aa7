"""The merchant console over plain HTTP: every page, roles, CSRF, cookies; SQLite and PostgreSQL."""
from __future__ import annotations

import re

import pytest

from stalela.auth.permissions import ROLES, Perm
from tests.dashboard.conftest import Browser, email, make_user
from tests.support.invoices import sample_invoice


async def seal(client, org, **overrides):
    r = await client.post("/v1/invoices", json=sample_invoice(org["outlet"]["id"], **overrides), headers=org["key"])
    assert r.status_code == 201, r.text
    return r.json()


async def test_sign_in_sets_safe_cookies_and_sign_out_ends_the_session(app, browser, org):
    await make_user(app, org, email(org, "boss"), "owner")
    r = await browser.get("/app")
    assert r.status_code == 303 and r.headers["location"] == "/app/login?next=/app"
    page = await browser.get("/app/login")
    assert page.status_code == 200 and "<label for=\"email\">" in page.text
    bad = await browser.post("/app/login", {"email": email(org, "boss"), "password": "wrong password here"})
    assert bad.status_code == 401 and "Wrong email or password" in bad.text
    r = await browser.post("/app/login", {"email": email(org, "boss"), "password": "correct horse battery staple",
                                          "next": "/app/invoices"})
    assert r.status_code == 303 and r.headers["location"] == "/app/invoices"
    cookies = {c.split("=")[0]: c.lower() for c in r.headers.get_list("set-cookie")}
    assert "httponly" in cookies["stalela_app"] and "samesite=lax" in cookies["stalela_app"]
    assert "path=/app" in cookies["stalela_app"] and "secure" not in cookies["stalela_app"]  # plain http here
    assert "httponly" in cookies["stalela_app_refresh"] and "samesite=lax" in cookies["stalela_app_refresh"]
    home = await browser.get("/app")
    assert home.status_code == 200 and email(org, "boss") in home.text
    assert "default-src 'self'" in home.headers["content-security-policy"]
    r = await browser.post("/app/logout")
    assert r.status_code == 303 and r.headers["location"] == "/app/login"
    assert (await browser.get("/app")).status_code == 303


async def test_open_redirects_are_refused(app, browser, org):
    await make_user(app, org, email(org, "o"), "owner")
    await browser.get("/app/login")
    r = await browser.post("/app/login", {"email": email(org, "o"), "password": "correct horse battery staple",
                                          "next": "//evil.example/x"})
    assert r.headers["location"] == "/app"


async def test_home_shows_the_day_from_the_aggregates(owner, client, org):
    await seal(client, org)
    await seal(client, org)
    r = await owner.get("/app")
    assert r.status_code == 200
    assert 'data-testid="today-count">2<' in r.text
    assert "218,800.00" in r.text  # 2 × (2 × 45 000 × 1.16 + 5 000): prices before VAT
    assert "<svg class=\"chart\"" in r.text and "KIN1" in r.text


async def test_invoice_list_filters_pages_and_invoice_page(owner, client, org):
    sealed = [await seal(client, org) for _ in range(27)]
    r = await owner.get("/app/invoices")
    assert r.status_code == 200 and sealed[-1]["fiscal_number"] in r.text and sealed[0]["fiscal_number"] not in r.text
    assert 'rel="next"' in r.text
    r = await owner.get(f"/app/invoices?after={sealed[2]['id']}")
    assert sealed[0]["fiscal_number"] in r.text and sealed[2]["fiscal_number"] not in r.text
    r = await owner.get(f"/app/invoices?fiscal_number={sealed[5]['fiscal_number']}")
    assert r.text.count("/app/invoices/inv_") == 1
    assert sealed[5]["fiscal_number"] in (await owner.get("/app/invoices?status=pending")).text
    assert "No invoice matches" in (await owner.get("/app/invoices?status=acknowledged")).text
    assert "No invoice matches" in (await owner.get("/app/invoices?type=FA")).text
    assert (await owner.get("/app/invoices?type=bad")).status_code == 422
    r = await owner.get(f"/app/invoices/{sealed[0]['id']}")
    assert r.status_code == 200
    assert sealed[0]["seal"]["hash"] in r.text and f"/verify/{sealed[0]['id']}" in r.text and "<svg" in r.text
    assert "Sac de riz 25 kg" in r.text and f"/app/invoices/{sealed[0]['id']}/pdf" in r.text
    pdf = await owner.get(f"/app/invoices/{sealed[0]['id']}/pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF") and sealed[0]["fiscal_number"] in pdf.headers["content-disposition"]
    assert (await owner.get("/app/invoices/inv_nope")).status_code == 404


async def test_cashier_sees_only_what_a_cashier_may(cashier, client, org):
    r = await cashier.get("/app")
    assert r.status_code == 200
    assert "/app/keys" not in r.text and "/app/users" not in r.text and "/app/webhooks" not in r.text
    for page in ("/app/keys", "/app/users", "/app/webhooks", "/app/reports"):
        r = await cashier.get(page)
        assert r.status_code == 403, page
        assert "may not open this page" in r.text
    r = await cashier.post("/app/keys", {"name": "sneaky"})
    assert r.status_code == 403
    assert (await cashier.get("/app/invoices")).status_code == 200
    assert (await cashier.get("/app/outlets")).status_code == 200


async def test_forms_need_the_csrf_token_and_same_origin(owner):
    r = await owner.post("/app/keys", {"name": "no token"}, csrf=False)
    assert r.status_code == 403 and "form expired" in r.text
    r = await owner.post("/app/keys", {"name": "forged", "csrf": "guess"}, csrf=False)
    assert r.status_code == 403
    r = await owner.post("/app/keys", {"name": "cross"}, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and "cross-site" in r.text
    r = await owner.post("/app/keys", {"name": "json"}, csrf=False, headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 403)


async def test_api_keys_are_shown_once_and_revoked(owner, client, org):
    await owner.get("/app/keys")
    r = await owner.post("/app/keys", [("name", "till 2"), ("scopes", "invoices:write"), ("scopes", "reports")])
    assert r.status_code == 201
    secret = r.text.split('data-testid="new-secret">')[1].split("<")[0]
    assert secret.startswith("sk_")
    listing = await owner.get("/app/keys")
    assert secret not in listing.text and "till 2" in listing.text
    ok = await client.get("/v1/outlets", headers={"Authorization": f"Bearer {secret}"})
    assert ok.status_code == 200
    key_id = listing.text.split("/revoke")[0].rsplit("/app/keys/", 1)[1]
    r = await owner.post(f"/app/keys/{key_id}/revoke")
    assert r.status_code == 303
    assert (await client.get("/v1/outlets", headers={"Authorization": f"Bearer {secret}"})).status_code == 401


async def test_invite_accept_and_sign_in_as_cashier_then_change_role_and_deactivate(owner, browser, org):
    await owner.get("/app/users")
    r = await owner.post("/app/users/invite", [("email", email(org, "new")), ("name", "New"), ("role", "cashier"),
                                               ("outlet_ids", org["outlet"]["id"])])
    assert r.status_code == 201, r.text[:300]
    token = r.text.split("token=")[1].split("<")[0]
    await browser.get(f"/app/accept?token={token}")
    r = await browser.post("/app/accept", {"token": token, "password": "a long new password", "password2":
                                           "a long new password"})
    assert r.status_code == 303
    await browser.login(email(org, "new"), "a long new password")
    assert (await browser.get("/app/keys")).status_code == 403
    users = await owner.get("/app/users")
    user_id = users.text.split('action="/app/users/usr_')[1].split('"')[0]
    user_id = "usr_" + user_id
    r = await owner.post(f"/app/users/{user_id}", {"role": "accountant"})
    assert r.status_code == 303
    assert "accountant" in (await owner.get("/app/users")).text
    r = await owner.post(f"/app/users/{user_id}", {"status": "deactivated"})
    assert r.status_code == 303
    assert (await browser.get("/app")).status_code == 303  # the deactivated user is signed out


async def test_outlets_create_edit_and_register_a_device(owner, org):
    await owner.get("/app/outlets")
    r = await owner.post("/app/outlets", {"code": "LUB1", "name": "Lubumbashi", "timezone": "Africa/Lubumbashi"})
    assert r.status_code == 303
    page = await owner.get("/app/outlets")
    assert "LUB1" in page.text
    r = await owner.post("/app/outlets", {"code": "LUB1", "name": "again"})
    assert r.status_code == 409
    r = await owner.post("/app/outlets", {"code": "bad code!", "name": "x"})
    assert r.status_code == 422
    outlet_id = org["outlet"]["id"]
    r = await owner.post(f"/app/outlets/{outlet_id}", {"name": "Gombe centre", "timezone": "Africa/Kinshasa",
                                                       "status": "active"})
    assert r.status_code == 303 and "Gombe centre" in (await owner.get("/app/outlets")).text
    r = await owner.post(f"/app/outlets/{outlet_id}/device", {"nim": "NIM123", "base_url": "http://127.0.0.1:9",
                                                              "token": "secret-device-token"})
    assert r.status_code == 303
    page = await owner.get("/app/outlets")
    assert "NIM123" in page.text and "secret-device-token" not in page.text


async def test_reports_close_the_day_download_z_x_a_and_audit_export(owner, client, org, app, settings):
    await seal(client, org)
    await owner.get("/app/reports")
    x = await owner.get(f"/app/reports/x/{org['outlet']['id']}")
    assert x.status_code == 200 and "X report" in x.text
    pdf = await owner.get(f"/app/reports/x/{org['outlet']['id']}?format=pdf")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    r = await owner.post("/app/reports/close", {"outlet_id": org["outlet"]["id"]})
    assert r.status_code == 303 and "/app/reports/z/" in r.headers["location"]
    z = await owner.get(r.headers["location"])
    assert "The day is closed" in z.text and "KIN1-Z-000001" in z.text
    z_id = r.headers["location"].split("/z/")[1].split("?")[0]
    pdf = await owner.get(f"/app/reports/z/{z_id}/download?format=pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    csv = await owner.get(f"/app/reports/z/{z_id}/download?format=csv")
    assert csv.status_code == 200 and b"KIN1-Z-000001" in csv.content
    again = await owner.post("/app/reports/close", {"outlet_id": org["outlet"]["id"]})
    assert "already" in again.headers["location"]
    listing = await owner.get("/app/reports")
    assert "KIN1-Z-000001" in listing.text
    from datetime import date, timedelta
    day = date.today()
    a = await owner.get(f"/app/reports/a?from={day - timedelta(days=2)}&to={day + timedelta(days=1)}&format=csv")
    assert a.status_code == 200 and a.headers["content-type"].startswith("text/csv")
    r = await owner.post("/app/reports/exports", {"from": "", "to": ""})
    assert r.status_code == 303
    export_id = r.headers["location"].split("export=")[1].split("#")[0]
    status = (await owner.get(f"/app/reports/exports/{export_id}")).json()
    assert status["status"] == "pending"
    from stalela.fiscal.reports import jobs
    # The runner takes the oldest waiting export of any tenant: other tests' jobs in the shared
    # database may come first.
    for _ in range(50):
        if await jobs.run_one(app.state.db, settings) in (export_id, None):
            break
    status = (await owner.get(f"/app/reports/exports/{export_id}")).json()
    assert status["status"] == "ready" and status["download_url"].startswith("/app/reports/exports/"), status
    blob = await owner.get(status["download_url"])
    assert blob.status_code == 200 and blob.content[:2] == b"\x1f\x8b"


@pytest.mark.parametrize("query", ["from=0001-01-01&to=0001-01-03", "from=9999-12-30&to=9999-12-31",
                                   "from=20261201&to=2026-12-31", "from=2026-12-01&to=0", "from=2026-02-30&to=2026-03-01"])
async def test_console_dates_follow_the_api_rule(owner, org, query):
    # An A report answered 200 for the calendar's ends, then its stream broke (OverflowError); digits passed.
    r = await owner.get(f"/app/reports/a?{query}&format=csv")
    assert r.status_code == 422 and "text/html" in r.headers["content-type"], r.text[:300]
    assert re.search(r"(from|to): .*(YYYY-MM-DD|between 1900-01-01 and 9998-12-31|valid date)", r.text), r.text[-1500:]
    r = await owner.post("/app/reports/close", {"outlet_id": org["outlet"]["id"], "business_day": "20261201"})
    assert r.status_code == 422 and "business_day: a date is a YYYY-MM-DD string" in r.text
    r = await owner.post("/app/reports/exports", {"from": "0001-01-01", "to": ""})
    assert r.status_code == 422 and "from: a date lies between 1900-01-01 and 9998-12-31" in r.text


async def test_webhooks_create_test_log_and_retry(owner, org, app, settings):
    await owner.get("/app/webhooks")
    r = await owner.post("/app/webhooks", [("url", "http://127.0.0.1:9/hook"), ("event_types", "invoice.sealed")])
    assert r.status_code == 201 and "whsec_" in r.text
    page = await owner.get("/app/webhooks")
    assert "whsec_" not in page.text
    endpoint_id = page.text.split('href="/app/webhooks/')[1].split('"')[0]
    await owner.get(f"/app/webhooks/{endpoint_id}")
    r = await owner.post(f"/app/webhooks/{endpoint_id}/test")
    assert r.status_code == 303
    log = await owner.get(f"/app/webhooks/{endpoint_id}")
    assert "webhook.test" in log.text
    message_id = log.text.split("/messages/")[1].split('"')[0]
    detail = await owner.get(f"/app/webhooks/{endpoint_id}/messages/{message_id}")
    assert detail.status_code == 200 and "Not attempted yet" in detail.text and "webhook.test" in detail.text
    from stalela.outbox.registry import RetryLater
    from stalela.webhooks import delivery

    with pytest.raises(RetryLater):  # nobody listens on port 9: the outbox will try again later
        await delivery.deliver(app.state.db, settings, org["tenant"]["id"], message_id)
    await delivery.settle()
    detail = await owner.get(f"/app/webhooks/{endpoint_id}/messages/{message_id}")
    assert "Not attempted yet" not in detail.text and "<td>failed</td>" in detail.text, detail.text[-1500:]
    r = await owner.post(f"/app/webhooks/{endpoint_id}/messages/{message_id}/retry")
    assert r.status_code == 303 and "retried" in r.headers["location"]


async def test_an_expired_access_token_is_refreshed_transparently(owner):
    owner.http.cookies.delete("stalela_app", path="/app", domain="test.local")
    for cookie in list(owner.http.cookies.jar):
        if cookie.name == "stalela_app":
            owner.http.cookies.jar.clear(cookie.domain, cookie.path, cookie.name)
    r = await owner.get("/app")
    assert r.status_code == 200
    assert any(c.startswith("stalela_app=") for c in r.headers.get_list("set-cookie"))
    assert (await owner.get("/app/invoices")).status_code == 200


async def test_home_reads_aggregates_never_the_invoices(owner, client, org, app):
    """The home page must stay fast with a million invoices: not one statement touches the invoices table."""
    from sqlalchemy import event

    seen: list[str] = []

    def remember(conn, cursor, statement, *args):  # noqa: ANN001, ANN002
        seen.append(statement.lower())

    engine = app.state.db.engine.sync_engine
    for _ in range(3):
        await seal(client, org)
    event.listen(engine, "before_cursor_execute", remember)
    try:
        assert (await owner.get("/app")).status_code == 200
        few = len(seen)
        for _ in range(5):
            await seal(client, org)
        seen.clear()
        assert (await owner.get("/app")).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    assert len(seen) == few, "the home page's statements must not grow with the number of invoices"
    assert not [s for s in seen if re.search(r"\bfrom invoices\b|\bjoin invoices\b", s)], seen


async def test_every_form_field_has_a_label(owner, org):
    """Accessibility basics on every main page: a language, a main landmark, a label for each field."""
    pages = ["/app", "/app/invoices", "/app/reports", "/app/outlets", "/app/keys", "/app/users", "/app/webhooks"]
    for url in pages:
        html = (await owner.get(url)).text
        assert '<html lang="en">' in html and '<main id="main"' in html, url
        labelled = set(re.findall(r'<label for="([^"]+)"', html))
        for tag in re.findall(r"<(?:input|select)\b[^>]*>", html):
            if 'type="hidden"' in tag or 'type="checkbox"' in tag:  # checkboxes sit inside their label
                continue
            field_id = re.search(r'id="([^"]+)"', tag)
            assert field_id and field_id.group(1) in labelled, (url, tag)


async def test_static_assets_are_served_from_the_package(client):
    css = await client.get("/static/dashboard/app.css")
    assert css.status_code == 200 and "focus-visible" in css.text
    assert (await client.get("/static/dashboard/app.js")).status_code == 200
    assert (await client.get("/static/dashboard/../web.py")).status_code == 404
    assert (await client.get("/static/dashboard/web.py")).status_code == 404


async def test_over_https_the_cookies_are_secure(app, org):
    await make_user(app, org, email(org, "tls"), "owner")
    b = Browser(app, base_url="https://test")
    await b.get("/app/login")
    r = await b.post("/app/login", {"email": email(org, "tls"), "password": "correct horse battery staple"})
    assert r.status_code == 303
    for cookie in r.headers.get_list("set-cookie"):
        assert "; secure" in cookie.lower(), cookie
    await b.aclose()


async def test_an_email_in_two_tenants_chooses_its_account(app, browser, client, new_tenant, org):
    other, _ = await new_tenant("Other SARL", "B7654321Y")
    shared = email(org, "shared")
    await make_user(app, org, shared, "accountant")
    await make_user(app, {"tenant": other}, shared, "owner")
    await browser.get("/app/login")
    r = await browser.post("/app/login", {"email": shared, "password": "correct horse battery staple"})
    assert r.status_code == 409 and "Other SARL" in r.text and 'name="tenant_id"' in r.text
    r = await browser.post("/app/login", {"email": shared, "password": "correct horse battery staple",
                                          "tenant_id": other["id"]})
    assert r.status_code == 303
    home = await browser.get("/app")
    assert "Other SARL" in home.text and "owner" in home.text


async def test_a_suspended_tenant_can_look_but_not_change(owner, client, org, operator_headers):
    r = await client.post(f"/v1/tenants/{org['tenant']['id']}/suspend", headers=operator_headers)
    assert r.status_code == 200
    assert (await owner.get("/app/keys")).status_code == 200
    r = await owner.post("/app/keys", {"name": "while suspended"})
    assert r.status_code == 403 and "suspended" in r.text
    await client.post(f"/v1/tenants/{org['tenant']['id']}/activate", headers=operator_headers)


PAGES = {"/app": Perm.INVOICES_READ, "/app/invoices": Perm.INVOICES_READ, "/app/reports": Perm.REPORTS_READ,
         "/app/outlets": Perm.OUTLETS_READ, "/app/keys": Perm.ADMIN, "/app/users": Perm.ADMIN,
         "/app/webhooks": Perm.WEBHOOKS}


async def test_each_role_sees_exactly_the_screens_its_permissions_allow(app, org):
    """The console's role matrix, read from the API's own table (auth.permissions.ROLES)."""
    for role, perms in ROLES.items():
        address = email(org, f"matrix-{role}")
        await make_user(app, org, address, role, [org["outlet"]["id"]] if role == "cashier" else [])
        b = Browser(app)
        await b.login(address)
        nav = (await b.get("/app/invoices")).text.split('aria-label="Main"')[1].split("</nav>")[0]
        for page, perm in PAGES.items():
            r = await b.get(page)
            assert r.status_code == (200 if perm in perms else 403), (role, page, r.status_code)
            assert (f'href="{page}"' in nav) == (perm in perms), (role, page)
        await b.aclose()


async def test_a_rotation_on_a_forbidden_page_still_reaches_the_browser(cashier):
    """The refresh token is spent by the rotation: the new one must be set even on a 403 page."""
    for cookie in list(cashier.http.cookies.jar):
        if cookie.name == "stalela_app":
            cashier.http.cookies.jar.clear(cookie.domain, cookie.path, cookie.name)
    r = await cashier.get("/app/keys")
    assert r.status_code == 403
    assert any(c.startswith("stalela_app_refresh=") for c in r.headers.get_list("set-cookie"))
    import stalela.dashboard.web as web

    web._rotated.clear()  # no help from the per-process grace: the browser's own cookies must be right
    assert (await cashier.get("/app")).status_code == 200


async def test_the_api_stays_json_only(client, org):
    """Form bodies are let through for the consoles' paths only."""
    r = await client.post("/v1/outlets", content=b"code=X&name=Y", headers=org["key"] | {
        "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415


async def test_a_credit_note_links_to_its_original_and_shows_payments(owner, client, org):
    original = await seal(client, org, payments=[{"method": "ESPECES", "amount": "109400.00"}])
    credit = await seal(client, org, type="FA", nature="COR", original=original["fiscal_number"],
                        lines=[{"description": "Retour", "item_type": "BIE", "tax_group": "B", "quantity": "1",
                                "unit_price": "45000.00"}])
    page = (await owner.get(f"/app/invoices/{credit['id']}")).text
    # The note names its original (a link to its page) and its nature by name; its amounts are negative.
    assert f'href="/app/invoices/{original["id"]}">{original["fiscal_number"]}</a>' in page
    assert "Correction (COR)" in page and "Credit note (FA)" in page and 'class="badge credit"' in page
    assert '<strong data-testid="invoice-total"><span class="amount negative">-CDF' in page
    shown = (await owner.get(f"/app/invoices/{original['id']}")).text
    assert "Cash (ESPECES) <span class=\"amount\">109,400.00</span>" in shown
    # The original lists the notes that cite it, and what is left of it.
    notes = shown[shown.index('data-testid="credit-notes"'):]
    assert f'href="/app/invoices/{credit["id"]}">{credit["fiscal_number"]}</a>' in notes
    assert '<span class="amount negative">-CDF52,200.00</span>' in notes  # 45 000 × 1.16
    assert "CDF57,200.00" in notes  # 109 400 − 52 200
    # In the list, the note is badged and its total signed.
    listing = (await owner.get("/app/invoices")).text
    row = listing[listing.index(credit["fiscal_number"]):][:800]
    assert "Credit note" in row and 'amount negative' in row

