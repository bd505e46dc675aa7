"""The console's settings pages (API keys, users, webhooks, privacy, usage & billing) and the signed-out
pages (sign-in, invitation) in French and Spanish; and the keys page listing each key with what it can
really do. Real app, real database (SQLite and PostgreSQL), plain HTTP."""
from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import update

from stalela.auth.models import User
from stalela.auth.permissions import SCOPES, DEFAULT_SCOPES
from stalela.i18n import localizer
from stalela.tenancy.context import bind_platform, bind_tenant
from stalela.tenancy.models import Tenant
from tests.dashboard.conftest import Browser, email, make_user
from tests.tenancy.test_key_scopes import _refused


HEADINGS = {
    "/app/keys": {"fr": "Clés d'API", "es": "Claves de API"},
    "/app/users": {"fr": "Utilisateurs", "es": "Usuarios"},
    "/app/webhooks": {"fr": "Points de réception de webhooks", "es": "Endpoints de webhooks"},
    "webhook": {"fr": "Point de réception de webhooks", "es": "Endpoint de webhooks"},
    "message": {"fr": "Message de webhook", "es": "Mensaje de webhook"},
    "/app/privacy": {"fr": "Demandes relatives aux données personnelles", "es": "Pedidos sobre datos personales"},
    "/app/billing": {"fr": "Consommation et facturation", "es": "Consumo y facturación"},
    "/app/login": {"fr": "Connexion à Stalela", "es": "Iniciar sesión en Stalela"},
    "/app/accept": {"fr": "Acceptez votre invitation", "es": "Acepte su invitación"},
}


def h1(page: str) -> str:
    found = re.search(r"<h1>(.*?)</h1>", page, re.S)
    assert found, "no <h1>"
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1))).strip()


def in_language(r, lang: str) -> str:  # noqa: ANN001
    assert r.status_code == 200, r.text[:500]
    assert r.headers["content-language"] == lang
    assert f'<html lang="{lang}">' in r.text
    return r.text


async def set_language(app, org: dict, *, lang: str, user: str | None = None) -> None:  # noqa: ANN001
    """The language a user chose (``user``: their email), else the organisation's default."""
    async with app.state.db.transaction() as session:
        if user:
            await bind_tenant(session, org["tenant"]["id"])
            await session.execute(update(User).where(User.email == user).values(locale=lang))
        else:
            await bind_platform(session)
            await session.execute(update(Tenant).where(Tenant.id == org["tenant"]["id"]).values(locale=lang))


async def speaking(app, org: dict, who: str, lang: str) -> Browser:  # noqa: ANN001
    """An owner whose own language is ``lang`` (the console's first choice), whose browser asks for it too."""
    await make_user(app, org, email(org, who), "owner")
    await set_language(app, org, user=email(org, who), lang=lang)
    b = Browser(app)
    b.http.headers["Accept-Language"] = lang
    await b.login(email(org, who))
    return b


@pytest.mark.parametrize("lang", ["fr", "es"])
async def test_the_settings_pages_speak_french_and_spanish(app, client, org, lang):
    b = await speaking(app, org, f"owner-{lang}", lang)
    try:
        for page in ("/app/keys", "/app/users", "/app/webhooks", "/app/privacy", "/app/billing"):
            text = in_language(await b.get(page), lang)
            assert h1(text) == HEADINGS[page][lang], page
            assert "table-scroll" in text or page == "/app/billing", page  # wide tables scroll on a phone
        # A webhook endpoint, its message log and one message.
        r = await b.post("/app/webhooks", [("url", "http://127.0.0.1:9/hook"), ("event_types", "invoice.sealed")])
        assert r.status_code == 201
        endpoint_id = r.text.split('href="/app/webhooks/')[1].split('"')[0]
        assert (await b.post(f"/app/webhooks/{endpoint_id}/test")).status_code == 303
        log = in_language(await b.get(f"/app/webhooks/{endpoint_id}"), lang)
        assert h1(log) == HEADINGS["webhook"][lang]
        assert {"fr": "en attente", "es": "pendiente"}[lang] in log  # the message's status, translated
        message_id = log.split("/messages/")[1].split('"')[0]
        detail = in_language(await b.get(f"/app/webhooks/{endpoint_id}/messages/{message_id}"), lang)
        assert h1(detail).startswith(HEADINGS["message"][lang])
        assert {"fr": "Pas encore tenté.", "es": "Todavía no se intentó."}[lang] in html.unescape(detail)
        # Times are <time> elements: the local reading, the UTC instant in datetime and on hover.
        assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ" title="[^"]+ UTC">', detail)
        # Roles by name in the page's language; the form still posts the role's code.
        users = html.unescape(in_language(await b.get("/app/users"), lang))
        assert {"fr": '<option value="owner" selected>propriétaire</option>',
                "es": '<option value="owner" selected>propietario</option>'}[lang] in users
    finally:
        await b.aclose()


def links_of_switch(page: str) -> list[tuple[str, str]]:
    found = re.search(r'<nav class="pager lang-switch".*?</nav>', page, re.S)
    assert found, "no language switch"
    links = re.findall(r'<a href="([^"]+)" hreflang="(\w+)"', html.unescape(found.group(0)))
    assert {code for _, code in links} == {"fr", "es", "en"}
    return links


@pytest.mark.parametrize("lang", ["fr", "es"])
async def test_sign_in_and_invitation_pages_follow_lang_and_keep_their_parameters(app, org, browser, lang):
    text = in_language(await browser.get(f"/app/login?next=/app/keys&lang={lang}"), lang)
    assert h1(text) == HEADINGS["/app/login"][lang]
    # The switch offers every language for this same page, `next` kept.
    switch = links_of_switch(text)
    for href, code in switch:
        assert href.startswith("/app/login?") and "next=%2Fapp%2Fkeys" in href and f"lang={code}" in href
    # A failed sign-in answers in the same language (the form posts it back).
    r = await browser.post(f"/app/login?lang={lang}", {"email": email(org, "nobody"), "password": "wrong password!"})
    assert r.status_code == 401 and r.headers["content-language"] == lang

    text = in_language(await browser.get(f"/app/accept?token=inv_abc&lang={lang}"), lang)
    assert h1(text) == HEADINGS["/app/accept"][lang]
    assert all("token=inv_abc" in href for href, _ in links_of_switch(text))
    # Without ?lang the browser's language decides.
    r = await browser.get("/app/login", headers={"Accept-Language": f"{lang}-AR;q=0.9, de;q=0.5"})
    assert h1(in_language(r, lang)) == HEADINGS["/app/login"][lang]


async def test_the_keys_page_lists_what_each_key_can_really_do(owner, client, org):
    await owner.get("/app/keys")
    # A till's key asking for every scope (none ticked: everything its creator may grant).
    r = await owner.post("/app/keys", {"name": "till KIN1", "outlet_id": org["outlet"]["id"]})
    assert r.status_code == 201, r.text[:500]
    secret = r.text.split('data-testid="new-secret">')[1].split("<")[0]
    page = (await owner.get("/app/keys")).text
    row = next(tr for tr in re.findall(r"<tr data-key=.*?</tr>", page, re.S) if "till KIN1" in tr)
    listed = re.search(r'data-testid="scopes">([^<]*)<', row).group(1).split(", ")
    assert listed == ["invoices:draft", "invoices:read", "invoices:write", "reports"]
    assert '<code data-testid="outlet-code">KIN1</code>' in row
    assert "admin, connectors, usage, webhooks" in row  # what it asked for and cannot use, said plainly
    # The page agrees with the API and with the real refusals.
    api = {k["name"]: k for k in (await client.get("/v1/api-keys", headers=org["key"])).json()["data"]}
    assert api["till KIN1"]["scopes"] == listed and api["till KIN1"]["outlet_code"] == "KIN1"
    for scope in SCOPES:
        assert await _refused(client, secret, scope, org["outlet"]["id"]) == (scope not in listed), scope
    # The tenant-wide root key keeps every scope but the opt-in ones (invoices:approve), and no outlet.
    root = next(tr for tr in re.findall(r"<tr data-key=.*?</tr>", page, re.S) if ">default<" in tr)
    assert re.search(r'data-testid="scopes">([^<]*)<', root).group(1).split(", ") == sorted(DEFAULT_SCOPES)
    assert "outlet-code" not in root


async def test_times_are_read_in_the_organisations_zone_with_utc_on_hover(app, org):
    b = await speaking(app, org, "owner-tz", "fr")
    try:
        page = in_language(await b.get("/app/keys"), "fr")
        times = re.findall(r'<time datetime="([^"]+)" title="([^"]+)">([^<]+)</time>', page)
        assert times
        fr = localizer("fr")
        for instant, title, shown in times:  # KIN1 is in Africa/Kinshasa (UTC+1), the organisation's zone
            assert html.unescape(shown) == fr.datetime(instant, org["outlet"]["timezone"])
            assert html.unescape(title) == fr.datetime(instant, "UTC", seconds=True) + " UTC"
    finally:
        await b.aclose()
