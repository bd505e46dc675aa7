"""An operator signs in to /ops with single sign-on in Chromium, through a real OpenID Connect provider on
loopback, against a real `stalela serve`; then a support operator with a password sees no action buttons."""
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
