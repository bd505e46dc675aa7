"""An operator signs in to /ops with single sign-on in Chromium, through a real OpenID Connect provider on
loopback, against a real `stalela serve`; then a support operator with a password sees no action buttons.
An admin works in Spanish on a phone (nothing wider than the screen), audited with axe-core, and registers a
tenant from the console."""
from __future__ import annotations

import os

import httpx
import pytest

from tests.dashboard.test_browser import ARGS, CHROMIUM
from tests.support.server import free_port, start_server

TOKEN = "browser-operators-token"
PASSWORD = "support passphrase 2026"

try:
    import oidc_provider_mock
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - the test extras install them
    sync_playwright = None

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(sync_playwright is None, reason="playwright / oidc-provider-mock are not installed "
                                                       "(pip install -e '.[test]')"),
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"{CHROMIUM} is absent: install Debian's chromium (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def provider():
    with oidc_provider_mock.run_server_in_thread(require_nonce=True) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture(scope="module")
def server(tmp_path_factory, provider):
    port = free_port()
    live = start_server({
        "STALELA_OPERATOR_TOKEN": TOKEN, "STALELA_ARGON2_TIME_COST": "1", "STALELA_ARGON2_MEMORY_KIB": "1024",
        "STALELA_ARGON2_PARALLELISM": "1", "STALELA_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "STALELA_OIDC_ISSUER": provider, "STALELA_OIDC_CLIENT_ID": "stalela-ops",
        "STALELA_OIDC_CLIENT_SECRET": "browser-test-secret",
    }, tmp_path_factory.mktemp("operators-browser"), port=port)
    yield live
    live.stop()


def _operator(base: str, email: str, role: str, password: str | None = None) -> dict:
    body = {"email": email, "name": email.split("@")[0].title(), "role": role}
    if password:
        body["password"] = password
    r = httpx.post(f"{base}/v1/operators", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 201, r.text
    return r.json()


def test_sso_sign_in_and_a_read_only_support_operator_in_chromium(server, provider):
    admin = _operator(server.base_url, "ada@ops.example", "platform_admin")
    support = _operator(server.base_url, "sam@ops.example", "support", PASSWORD)
    assert httpx.put(f"{provider}/users/ada-sub", json={"email": "ada@ops.example", "email_verified": True,
                                                        "name": "Ada"}).status_code == 204
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context(base_url=server.base_url)
            context.set_default_timeout(15_000)
            page = context.new_page()
            page.goto("/ops")
            page.get_by_role("link", name="Sign in with SSO").click()
            page.locator("input[name=sub]").fill("ada-sub")  # the provider's own sign-in form
            page.get_by_role("button", name="Authorize").click()
            expect(page.get_by_role("heading", name="Pipeline", exact=True)).to_be_visible()
            expect(page.locator("header .who")).to_contain_text("ada@ops.example")
            expect(page.locator("header .who")).to_contain_text("platform_admin")
            page.get_by_role("link", name="Operators").click()
            expect(page.get_by_role("button", name="Create")).to_be_visible()
            page.get_by_role("link", name="Audit log").click()
            expect(page.get_by_text("Chain intact")).to_be_visible()
            expect(page.get_by_text(f"operator:{admin['id']}").first).to_be_visible()
            page.get_by_role("button", name="Sign out").click()
            expect(page.get_by_label("Email")).to_be_visible()
            context.close()

            context = browser.new_context(base_url=server.base_url)
            context.set_default_timeout(15_000)
            page = context.new_page()
            page.goto("/ops/login")
            page.get_by_label("Email").fill(support["email"])
            page.get_by_label("Password", exact=True).fill(PASSWORD)
            page.get_by_role("button", name="Sign in", exact=True).click()
            expect(page.get_by_role("heading", name="Pipeline", exact=True)).to_be_visible()
            expect(page.locator("header .who")).to_contain_text("support")
            page.get_by_role("link", name="Tenants & webhooks").click()
            expect(page.get_by_role("button", name="Suspend")).to_have_count(0)
            page.get_by_role("link", name="Operators").click()
            expect(page.get_by_role("button", name="Create")).to_have_count(0)
            context.close()
        finally:
            browser.close()
    linked = httpx.get(f"{server.base_url}/v1/operators/{admin['id']}",
                       headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert linked["oidc_subject"] == "ada-sub"


OPS_PAGES = ("/ops", "/ops/sync", "/ops/tenants", "/ops/privacy", "/ops/billing", "/ops/databases", "/ops/operators",
             "/ops/audit", "/ops/account")


def _audit(page, where: str, findings: list[str]) -> None:  # noqa: ANN001
    """axe-core's WCAG 2.1 A and AA rules, as the merchant console's browser test runs them."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21aa"]},
                                       "resultTypes": ["violations"]})
    findings += [f"{where}: {v['id']} ({v['impact']}): {v['help']}" for v in results.response["violations"]]


def test_an_admin_works_in_spanish_on_a_phone_and_creates_a_tenant(server):
    admin = _operator(server.base_url, "lucia@ops.example", "platform_admin", PASSWORD)
    findings: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            # A French browser on a 390 px phone: the console speaks French until Lucía chooses Spanish.
            context = browser.new_context(base_url=server.base_url, viewport={"width": 390, "height": 844},
                                          locale="fr-CD")
            context.set_default_timeout(15_000)
            page = context.new_page()
            page.goto("/ops/login")
            expect(page.get_by_role("heading", name="Console d'exploitation")).to_be_visible()
            page.get_by_label("E-mail").fill(admin["email"])
            page.get_by_label("Mot de passe", exact=True).fill(PASSWORD)
            page.get_by_role("button", name="Se connecter", exact=True).click()
            page.get_by_role("link", name="Mon compte").click()
            page.get_by_label("Langue", exact=True).select_option("es")
            page.get_by_role("button", name="Enregistrer").click()
            expect(page.get_by_role("heading", name="Mi cuenta")).to_be_visible()
            expect(page.get_by_role("status")).to_have_text("Guardado.")
            for path in OPS_PAGES:
                page.goto(path)
                assert page.evaluate("document.documentElement.getAttribute('lang')") == "es", path
                # Wide tables scroll inside themselves (app.css), not the page.
                assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
                _audit(page, f"es {path}", findings)
            # The new tenant form, in Spanish; its key shown once.
            page.goto("/ops/tenants")
            page.get_by_text("Nuevo cliente").click()
            page.get_by_label("Nombre", exact=True).fill("Navegador SARL")
            page.get_by_label("Identificación fiscal (NIF en la RDC, CUIT en Argentina)").fill("N0000001B")
            page.get_by_label("Idioma", exact=True).select_option("fr")
            page.get_by_role("button", name="Crear el cliente").click()
            expect(page.get_by_role("heading", name="Cliente creado")).to_be_visible()
            expect(page.get_by_test_id("api-key")).to_contain_text("sk_")
            _audit(page, "es tenant created", findings)
            tenant_id = page.get_by_test_id("tenant-id").inner_text()
            context.close()
        finally:
            browser.close()
    assert not findings, "accessibility (axe-core):\n" + "\n".join(findings)
    got = httpx.get(f"{server.base_url}/v1/tenants/{tenant_id}", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert (got["name"], got["locale"], got["language"]) == ("Navegador SARL", "fr", "fr")
    me = httpx.get(f"{server.base_url}/v1/operators/{admin['id']}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert me.json()["locale"] == "es"
