"""The merchant console's language, local times, onboarding checklist and HTML 404s; SQLite and PostgreSQL."""
from __future__ import annotations

import re

from tests.auth.test_users import login
from tests.dashboard.conftest import Browser, email, make_user, set_tenant_language
from tests.dashboard.test_merchant import seal

NNBSP = "\u202f"  # French groups digits with a narrow no-break space


async def signed_in(app, org, who: str = "owner", role: str = "owner", **kw) -> Browser:  # noqa: ANN003
    await make_user(app, org, email(org, who), role, **kw)
    b = Browser(app)
    await b.login(email(org, who))
    return b


def lang_of(html: str) -> str:
    return re.search(r'<html lang="([a-z]+)">', html).group(1)


async def test_the_console_speaks_the_tenants_language_then_the_users_choice(app, org):
    await set_tenant_language(app, org["tenant"]["id"], None)  # a Congolese tenant that chose nothing: French
    b = await signed_in(app, org)
    try:
        home = await b.get("/app", headers={"Accept-Language": "es"})  # the browser does not outrank the tenant
        assert home.status_code == 200 and lang_of(home.text) == "fr"
        assert ">Accueil</a>" in home.text and ">Factures</a>" in home.text and "Se déconnecter" in home.text
        assert home.headers["content-language"] == "fr"

        page = (await b.get("/app/settings")).text
        assert "Votre langue" in page and 'href="/app/branding"' in page
        assert "(Français)" in page
        r = await b.post("/app/settings/language", {"locale": "es"})
        assert r.status_code == 303
        page = (await b.get("/app/settings?saved=1")).text
        assert lang_of(page) == "es" and "Guardado." in page and "Configuración" in page
        assert re.search(r'<option value="es" lang="es" selected>', page)
        missing = await b.get("/app/no-such-page")  # knows no viewer, but remembers the viewer's language
        assert missing.status_code == 404 and lang_of(missing.text) == "es" and "Página no encontrada" in missing.text

        r = await b.post("/app/settings/language", {"locale": "xx"})
        assert r.status_code == 422 and lang_of(r.text) == "es" and "invalid_locale" in r.text

        r = await b.post("/app/settings/language", {"locale": ""})  # back to the organisation's default
        assert r.status_code == 303 and lang_of((await b.get("/app")).text) == "fr"

        r = await b.post("/app/settings/organisation", {"locale": "en"})  # the owner sets the default
        assert r.status_code == 303 and lang_of((await b.get("/app")).text) == "en"
    finally:
        await b.aclose()


async def test_only_an_admin_sets_the_organisations_language(app, org):
    b = await signed_in(app, org, "cashier", "cashier", outlet_ids=[org["outlet"]["id"]])
    try:
        page = (await b.get("/app/settings")).text
        assert "Your language" in page and "org-locale" not in page
        r = await b.post("/app/settings/organisation", {"locale": "fr"})
        assert r.status_code == 403 and "insufficient_permissions" in r.text
        assert lang_of((await b.get("/app/invoices")).text) == "en"
        assert (await b.post("/app/settings/language", {"locale": "fr"})).status_code == 303
        assert lang_of((await b.get("/app/invoices")).text) == "fr"
    finally:
        await b.aclose()


async def test_a_user_reads_and_sets_their_language_through_the_api(app, client, org):
    await make_user(app, org, email(org, "api"), "accountant")
    tokens = (await login(client, email(org, "api"))).json()
    me = {"Authorization": f"Bearer {tokens['access_token']}"}
    r = await client.get("/v1/users/me", headers=me)
    assert r.status_code == 200 and r.json()["email"] == email(org, "api") and r.json()["locale"] is None
    r = await client.patch("/v1/users/me", json={"locale": "es"}, headers=me)
    assert r.status_code == 200 and r.json()["locale"] == "es"
    assert (await client.get("/v1/users/me", headers=me)).json()["locale"] == "es"
    r = await client.patch("/v1/users/me", json={"locale": "de"}, headers=me)
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "invalid_locale" and r.json()["field"] == "locale"
    assert (await client.patch("/v1/users/me", json={"locale": None}, headers=me)).json()["locale"] is None
    r = await client.get("/v1/users/me", headers=org["key"])  # an API key is nobody
    assert r.status_code == 403 and r.json()["code"] == "not_a_user"


async def test_signed_out_pages_switch_language_and_remember_it(browser):
    r = await browser.get("/app/login?lang=es")
    assert r.status_code == 200 and lang_of(r.text) == "es"
    assert 'href="/app/login?lang=fr"' in r.text and 'href="/app/login?lang=en"' in r.text
    assert lang_of((await browser.get("/app/login")).text) == "es"  # the choice outlives the query
    r = await browser.post("/app/login", {"email": "nobody@kin.cd", "password": "wrong-password", "next": "/app"})
    assert r.status_code == 401 and "Correo electrónico o contraseña incorrectos." in r.text
    r = await browser.get("/app/login", headers={"Accept-Language": "fr-CD,fr;q=0.9"})
    assert lang_of(r.text) == "es"  # an explicit choice beats the browser's
    fresh = await browser.http.get("/app/login", headers={"Accept-Language": "fr-CD,fr;q=0.9"},
                                   cookies={"stalela_lang": ""})
    assert lang_of(fresh.text) in ("fr", "es")


async def test_unknown_console_paths_are_html_pages_and_the_apis_stay_json(client, org, app):
    for path, home in (("/app/nope", "/app"), ("/app/invoices/x/y/z", "/app"), ("/ops/nope", "/ops")):
        r = await client.get(path, headers={"Accept-Language": "fr"})
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), path
        assert lang_of(r.text) == "fr" and "Page introuvable" in r.text
        assert f'href="{home}" data-testid="back-link"' in r.text
    r = await client.get("/v1/nope")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")


async def test_times_are_local_with_utc_on_hover_and_amounts_in_the_locales_format(app, client, org):
    await set_tenant_language(app, org["tenant"]["id"], "fr")
    invoice = await seal(client, org)
    b = await signed_in(app, org)
    try:
        page = (await b.get(f"/app/invoices/{invoice['id']}")).text
        issued = invoice["issued_at"][:19]
        found = re.search(rf'<time datetime="{issued}Z" title="([^"]+) UTC">([^<]+)</time>', page)
        assert found, page[:3000]
        assert found.group(1) != found.group(2)  # Kinshasa is UTC+1: the local time is not the UTC one
        assert "(Africa/Kinshasa)" in page
        assert f'<span class="amount">109{NNBSP}400,00{NNBSP}CDF</span>' in page or \
            f'<span class="amount">109{NNBSP}400,00\xa0CDF</span>' in page
        assert "Facture de vente (FV)" in page and "Biens (BIE)" in page or "(BIE)" in page
        assert "16" in page and "%" in page  # the rate as a percentage, never 0.16
        assert "0.16" not in page
        listing = (await b.get("/app/invoices")).text
        assert f'<time datetime="{issued}Z"' in listing and "Numéro fiscal" in listing
    finally:
        await b.aclose()


async def test_the_first_run_checklist_follows_the_tenants_data(app, client, org, new_tenant):
    b = await signed_in(app, org)
    try:
        steps = dict(re.findall(r'data-step="(\w+)" data-done="(\w+)"', (await b.get("/app")).text))
        # The org fixture made an outlet, and a tenant's first API key comes with it.
        assert steps == {"outlet": "yes", "device": "no", "key": "yes", "invoice": "no", "webhook": "no"}
        await seal(client, org)
        r = await client.post("/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/hook"},
                              headers=org["key"])
        assert r.status_code == 201, r.text
        steps = dict(re.findall(r'data-step="(\w+)" data-done="(\w+)"', (await b.get("/app")).text))
        assert steps["invoice"] == "yes" and steps["webhook"] == "yes" and steps["device"] == "no"
        assert 'href="/app/outlets">Register the DGI device' in (await b.get("/app")).text
        r = await b.post(f"/app/outlets/{org['outlet']['id']}/device",
                         {"nim": "NIM-1", "base_url": "http://127.0.0.1:9/emcf", "token": "t0ken"})
        assert r.status_code == 303, r.text[:500]
        assert 'data-testid="onboarding"' not in (await b.get("/app")).text  # everything done: gone
    finally:
        await b.aclose()
    cashier = await signed_in(app, org, "cashier", "cashier", outlet_ids=[org["outlet"]["id"]])
    try:
        assert 'data-testid="onboarding"' not in (await cashier.get("/app")).text  # not theirs to do
    finally:
        await cashier.aclose()
