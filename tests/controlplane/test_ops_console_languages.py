"""The operations console in French and Spanish: the browser's language for the operator token and for
operators who chose none, else the operator's own (``/ops/account``, which the read-only support role may
use too)."""
from __future__ import annotations

import html
import re

from stalela.dashboard.web import LANG_COOKIE
from tests.conftest import OPERATOR_TOKEN
from tests.controlplane.test_operators_console import sign_in
from tests.dashboard.conftest import Browser

# The heading of each page, per language: translated text proves the catalog is used, not only present.
HEADINGS = {
    "/ops": {"fr": "Pipeline", "es": "Canal de sellado", "en": "Pipeline"},
    "/ops/sync": {"fr": "Synchronisation avec l'administration fiscale (DGI, ARCA)",
                  "es": "Sincronización con el fisco (DGI, ARCA)", "en": "Authority sync (DGI, ARCA)"},
    "/ops/tenants": {"fr": "Clients", "es": "Clientes", "en": "Tenants"},
    "/ops/privacy": {"fr": "Données personnelles", "es": "Privacidad", "en": "Privacy"},
    "/ops/billing": {"fr": "Facturation", "es": "Facturación", "en": "Billing"},
    "/ops/databases": {"fr": "Bases de données", "es": "Bases de datos", "en": "Databases"},
    "/ops/operators": {"fr": "Opérateurs", "es": "Operadores", "en": "Operators"},
    "/ops/audit": {"fr": "Journal d'audit de la plateforme", "es": "Registro de auditoría de la plataforma",
                   "en": "Platform audit log"},
}


def html_lang(text: str) -> str | None:
    found = re.search(r'<html lang="([a-z]+)"', text)
    return found.group(1) if found else None


def check_language(page, lang: str) -> None:  # noqa: ANN001
    assert page.headers["content-language"] == lang and html_lang(page.text) == lang


async def token_session(app, accept_language: str) -> Browser:  # noqa: ANN001
    b = Browser(app)
    b.http.headers["Accept-Language"] = accept_language
    page = await b.get("/ops/login")
    assert page.status_code == 200
    assert (await b.post("/ops/login", {"token": OPERATOR_TOKEN})).status_code == 303
    return b


async def test_every_page_speaks_the_browsers_language(app, client):
    for lang, header in (("fr", "fr-CD,fr;q=0.9,en;q=0.5"), ("es", "es-AR,es;q=0.9")):
        b = await token_session(app, header)
        try:
            for path, heading in HEADINGS.items():
                page = await b.get(path)
                assert page.status_code == 200, (lang, path, page.text[:300])
                check_language(page, lang)
                assert f"<h1>{heading[lang]}</h1>" in html.unescape(page.text), (lang, path)
                assert "<div class=\"table-scroll\">" in page.text or path == "/ops"
            tenants = html.unescape((await b.get("/ops/tenants")).text)
            assert {"fr": "Limite d'API", "es": "Límite de API"}[lang] in tenants
            assert {"fr": "Nouveau client", "es": "Nuevo cliente"}[lang] in tenants
        finally:
            await b.aclose()


async def test_the_sign_in_page_offers_the_languages(app):
    b = Browser(app)
    try:
        page = await b.get("/ops/login?lang=es")
        check_language(page, "es")
        assert "<h1>Consola de operaciones</h1>" in page.text and ">Iniciar sesión</button>" in page.text
        assert 'href="/ops/login?lang=fr"' in page.text and 'action="/ops/login?lang=es"' in page.text
        # A failed sign-in answers in the same language.
        wrong = await b.post("/ops/login?lang=es", {"token": "nope"})
        assert wrong.status_code == 401 and "Token de operador no válido." in wrong.text
        # The choice is remembered by this browser (the consoles' language cookie) over its own language.
        check_language(await b.get("/ops/login", headers={"Accept-Language": "fr"}), "es")
    finally:
        await b.aclose()
    fresh = Browser(app)
    try:
        page = await fresh.get("/ops/login", headers={"Accept-Language": "fr"})
        assert "<h1>Console d'exploitation</h1>" in html.unescape(page.text)
    finally:
        await fresh.aclose()


async def test_an_operator_chooses_their_language_even_as_support(app, client, operator_headers, new_operator):
    support = await new_operator("support", who="lingua")
    b = await sign_in(app, support["email"])
    # A French browser that has not been here before (sign_in's pages were English and remembered so).
    b.http.headers["Accept-Language"] = "fr"
    b.http.cookies.delete(LANG_COOKIE)
    try:
        check_language(await b.get("/ops"), "fr")  # no choice yet: the browser's
        account = await b.get("/ops/account")
        assert account.status_code == 200 and support["email"] in account.text
        assert re.search(r'<option value="" selected>La langue du navigateur</option>', account.text)
        # Support is read-only everywhere but here (and signing out): the language is their own business.
        r = await b.post("/ops/account", {"locale": "es"})
        assert r.status_code == 303 and r.headers["location"] == "/ops/account?done=1"
        page = await b.get("/ops/account?done=1")
        check_language(page, "es")  # the operator's choice wins over the browser's
        assert "<h1>Mi cuenta</h1>" in page.text and "Guardado." in page.text
        assert '<option value="es" lang="es" selected>' in page.text
        check_language(await b.get("/ops/tenants"), "es")
        got = (await client.get(f"/v1/operators/{support['id']}", headers=operator_headers)).json()
        assert got["locale"] == "es" and got["role"] == "support"
        # Still read-only elsewhere; an unknown language is a page saying so, not a 500.
        refused = await b.post("/ops/operators", {"email": "x@ops.example.test", "name": "X", "role": "support"})
        assert refused.status_code == 403
        bad = await b.post("/ops/account", {"locale": "de"})
        assert bad.status_code == 422, bad.text[:300]
        assert (await client.get(f"/v1/operators/{support['id']}", headers=operator_headers)).json()["locale"] == "es"
        # Empty: no choice of their own; this browser keeps the language it last showed them (the consoles'
        # cookie), a browser that never did uses its own.
        assert (await b.post("/ops/account", {"locale": ""})).status_code == 303
        check_language(await b.get("/ops/account"), "es")
        assert (await client.get(f"/v1/operators/{support['id']}", headers=operator_headers)).json()["locale"] is None
        b.http.cookies.delete(LANG_COOKIE)
        check_language(await b.get("/ops/account"), "fr")
        # An operator's language set through the API applies at the next page.
        await client.patch(f"/v1/operators/{support['id']}", json={"locale": "en"}, headers=operator_headers)
        check_language(await b.get("/ops"), "en")
    finally:
        await b.aclose()


async def test_the_token_session_has_no_account_page(app):
    b = await token_session(app, "en")
    try:
        page = await b.get("/ops")
        assert 'href="/ops/account"' not in page.text  # nobody's account: no link to it
        assert (await b.get("/ops/account")).status_code == 404
        assert (await b.post("/ops/account", {"locale": "fr"})).status_code == 404
    finally:
        await b.aclose()
