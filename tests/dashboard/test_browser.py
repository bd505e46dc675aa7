"""Both consoles in a real browser: Debian's Chromium driven by Playwright against a real `stalela serve`.

One scenario, one server, one browser (starting them is most of the cost). Screenshots of every main
screen go to docs/screenshots/ (shown in the README). Never downloads a browser: without
/usr/bin/chromium (or the playwright package) the test skips and says why.
"""
from __future__ import annotations

import asyncio
import os
import re
import tempfile
from pathlib import Path

import httpx
import pytest

from tests.support.invoices import sample_invoice
from tests.support.server import start_server
from tests.support.simulator import start_simulator

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# The README's screenshots are refreshed on demand (STALELA_SCREENSHOTS=1 make test); otherwise every
# run would leave the committed PNGs modified. The test still takes them, in a temporary folder.
SHOTS = (Path(__file__).resolve().parents[2] / "docs" / "screenshots" if os.environ.get("STALELA_SCREENSHOTS")
         else Path(tempfile.gettempdir()) / "stalela-screenshots")
OPERATOR = "browser-test-operator-token"
DEVICE = ("NIM-KIN1", "device-token-kin1")
PASSWORD = "correct horse battery staple"

try:
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - the test extras install them
    sync_playwright = None

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(sync_playwright is None,
                       reason="playwright / axe-playwright-python are not installed (pip install -e '.[test]')"),
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"{CHROMIUM} is absent: install Debian's chromium (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = start_server({
        "STALELA_OPERATOR_TOKEN": OPERATOR, "STALELA_ARGON2_TIME_COST": "1", "STALELA_ARGON2_MEMORY_KIB": "1024",
        "STALELA_ARGON2_PARALLELISM": "1", "STALELA_OUTBOX_POLL_SECONDS": "0.1",
        # The scenario's webhook endpoint is on loopback (and nothing answers there: it shows as failing).
        "STALELA_WEBHOOKS_ALLOW_PRIVATE": "true",
    }, tmp_path_factory.mktemp("browser"))
    yield live
    live.stop()


@pytest.fixture(scope="module")
def dgi():
    sim = start_simulator({DEVICE[0]: DEVICE[1]})
    yield sim
    sim.stop()


FINDINGS: list[str] = []


def _shot(page, name: str) -> None:  # noqa: ANN001
    """Screenshot a main screen, and audit it."""
    (SHOTS / name).parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    _audit(page, name)


def _audit(page, name: str) -> None:  # noqa: ANN001
    """Accessibility with axe-core (WCAG 2.1 A and AA rules); findings fail the test at its end."""
    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21aa"]},
                                       "resultTypes": ["violations"]})
    for v in results.response["violations"]:  # any impact: the screens have none today, keep it so
        FINDINGS.append(f"{name}: {v['id']} ({v['impact']}): {v['help']}: "
                        + "; ".join(n["html"][:120] for n in v["nodes"][:3]))


def _setup_tenant(base: str) -> dict:
    with httpx.Client(base_url=base, timeout=30) as http:
        r = http.post("/v1/tenants", json={"name": "Boutique Kin SARL", "tax_id": "A1234567Z", "jurisdiction": "CD"},
                      headers={"Authorization": f"Bearer {OPERATOR}"})
        assert r.status_code == 201, r.text
        key = {"Authorization": f"Bearer {r.json()['api_key']}"}
        tenant = r.json()["tenant"]
        outlets = [http.post("/v1/outlets", json={"code": c, "name": n}, headers=key).json()
                   for c, n in (("KIN1", "Gombe"), ("KIN2", "Limete"))]
        r = http.post("/v1/users", json={"email": "owner@kin.cd", "name": "Owner", "role": "owner",
                                         "password": PASSWORD}, headers=key)
        assert r.status_code == 201, r.text
        for i, outlet in enumerate(outlets * 3):  # a few days' worth of sales today, for the screenshots
            body = sample_invoice(outlet["id"])
            body["lines"][0]["quantity"] = str(i + 1)
            assert http.post("/v1/invoices", json=body, headers=key).status_code == 201
    return {"tenant": tenant, "key": key, "outlets": outlets}


def _dead_letter(data_dir: Path, tenant_id: str, invoice_id: str) -> str:
    """A sync event that exhausted its attempts (what a long DGI outage leaves behind)."""
    from sqlalchemy import update

    from stalela.db.session import Database
    from stalela.outbox.models import OutboxEvent
    from stalela.outbox.service import enqueue
    from stalela.tenancy.context import bind_platform, bind_tenant

    async def run() -> str:
        db = Database(f"sqlite+aiosqlite:///{data_dir / 'stalela.db'}")
        try:
            async with db.transaction() as session:
                await bind_tenant(session, tenant_id)
                event = enqueue(session, tenant_id, "authority.sync", {"invoice_id": invoice_id})
                await session.flush()
                await bind_platform(session)
                await session.execute(update(OutboxEvent).where(OutboxEvent.id == event.id).values(
                    status="dead", attempts=25, last_error="ConnectError: the DGI did not answer"))
                return event.id
        finally:
            await db.dispose()

    return asyncio.run(run())


def test_merchant_and_operator_consoles_in_chromium(server, dgi, tmp_path):
    base = server.base_url
    org = _setup_tenant(base)
    invoice_id = httpx.get(f"{base}/v1/invoices?limit=1", headers=org["key"]).json()["data"][0]["id"]
    # Before Playwright starts: its sync API runs an event loop in this thread.
    event_id = _dead_letter(Path(server.log_path).parent, org["tenant"]["id"], invoice_id)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            _merchant(browser, base, org, dgi.url, tmp_path)
            _languages(browser, base, org)
            _operator(browser, base, org, event_id)
        finally:
            browser.close()
    assert not FINDINGS, "accessibility (axe-core):\n" + "\n".join(FINDINGS)


def _merchant(browser, base: str, org: dict, dgi_url: str, tmp_path: Path) -> None:  # noqa: ANN001
    context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # "close the day?", "revoke?"

    page.goto("/app")
    expect(page).to_have_url(re.compile(r"/app/login"))
    page.get_by_label("Email").fill("owner@kin.cd")
    page.get_by_label("Password").fill(PASSWORD)
    _shot(page, "login")
    page.get_by_role("button", name="Sign in").click()
    # A Congolese tenant's console speaks French until someone chooses otherwise: the owner makes
    # English the organisation's language (the settings page), which the rest of this scenario reads.
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page.get_by_role("heading", name="Aujourd'hui", exact=True)).to_be_visible()
    # A new tenant's first-run checklist: outlets and a key exist; device, invoices seen, webhook not yet.
    expect(page.get_by_test_id("onboarding")).to_contain_text("Premiers pas")
    expect(page.locator('[data-step="device"]')).to_have_attribute("data-done", "no")
    expect(page.locator('[data-step="outlet"]')).to_have_attribute("data-done", "yes")
    _shot(page, "fr/getting-started")
    page.get_by_role("link", name="Paramètres").click()
    page.get_by_test_id("org-locale").select_option("en")
    page.get_by_role("button", name="Enregistrer").nth(1).click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    _shot(page, "settings")
    page.goto("/app")
    expect(page.get_by_role("heading", name="Today", exact=True)).to_be_visible()
    expect(page.get_by_test_id("today-count")).to_have_text("6")
    page.keyboard.press("Tab")  # keyboard users: the first stop skips the navigation
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()

    # Register KIN1's DGI device (the simulator): its waiting invoices go to the DGI.
    page.get_by_role("link", name="Outlets").click()
    page.get_by_text("Edit KIN1").click()
    page.get_by_label("NIM").first.fill(DEVICE[0])
    page.get_by_label("e-MCF base URL").first.fill(dgi_url)
    page.get_by_label(re.compile("Device token")).first.fill(DEVICE[1])
    page.get_by_role("button", name="Register device").first.click()
    expect(page.get_by_text("DGI device registered")).to_be_visible()
    _shot(page, "outlets")

    # Seal through the API; it shows up in the list at once, and the DGI acknowledges it.
    r = httpx.post(f"{base}/v1/invoices", json=sample_invoice(org["outlets"][0]["id"], reference="B-7781"),
                   headers=org["key"], timeout=30)
    assert r.status_code == 201, r.text
    invoice = r.json()
    page.get_by_role("link", name="Invoices").click()
    expect(page.get_by_role("link", name=invoice["fiscal_number"])).to_be_visible()
    page.get_by_role("link", name=invoice["fiscal_number"]).click()
    expect(page.get_by_role("heading", name=f"Invoice {invoice['fiscal_number']}")).to_be_visible()
    expect(page.get_by_text(invoice["seal"]["hash"])).to_be_visible()
    for _ in range(40):  # the page is static: reload until the sync agent has been answered
        if page.get_by_text("acknowledged", exact=True).count():
            break
        page.wait_for_timeout(250)
        page.reload()
    expect(page.get_by_text("acknowledged", exact=True)).to_be_visible()
    _shot(page, "invoice")
    page.get_by_test_id("verify-link").click()
    expect(page.get_by_test_id("verdict")).to_contain_text("Authentic invoice")
    page.goto("/app/invoices")
    _shot(page, "invoices")
    page.goto("/app")
    expect(page.get_by_test_id("today-count")).to_have_text("7")
    _shot(page, "home")

    # Close the day and download the Z as PDF.
    page.get_by_role("link", name="Reports").click()
    page.get_by_role("button", name="Close the day of KIN1 (Z report)").click()
    expect(page.get_by_text("The day is closed")).to_be_visible()
    expect(page.get_by_role("heading", name="Z report KIN1-Z-000001")).to_be_visible()
    _shot(page, "z-report")
    with page.expect_download() as download:
        page.get_by_test_id("report-pdf").click()
    pdf = tmp_path / "z.pdf"
    download.value.save_as(pdf)
    assert pdf.read_bytes().startswith(b"%PDF")

    # An audit export, with its progress polled by app.js until the file is there.
    page.get_by_role("link", name="Reports").click()
    page.get_by_role("button", name="Start an audit export").click()
    expect(page.locator("#exports").get_by_role("link", name=re.compile("Download"))).to_be_visible(timeout=30_000)
    _shot(page, "reports")

    # An API key: shown once, then revoked.
    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Name").fill("Till 2")
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_test_id("new-secret").inner_text()
    assert secret.startswith("sk_")
    _shot(page, "api-keys")
    assert httpx.get(f"{base}/v1/outlets", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    page.get_by_role("button", name="Revoke Till 2").click()
    expect(page.get_by_text("Key revoked")).to_be_visible()
    assert httpx.get(f"{base}/v1/outlets", headers={"Authorization": f"Bearer {secret}"}).status_code == 401

    # A webhook endpoint (nobody listens there), a test event and its log.
    page.get_by_role("link", name="Webhooks").click()
    page.get_by_label("URL (https)").fill("http://127.0.0.1:9/stalela-hook")
    page.get_by_label("Description").fill("ERP connector")
    page.get_by_role("button", name="Create endpoint").click()
    expect(page.get_by_text("whsec_")).to_be_visible()
    _shot(page, "webhooks")
    page.get_by_role("link", name="http://127.0.0.1:9/stalela-hook").click()
    page.get_by_role("button", name="Send a test event").click()
    expect(page.get_by_role("cell", name="webhook.test")).to_be_visible()
    _shot(page, "webhook-log")

    # Invite a cashier, who accepts in another browser and cannot see the keys.
    page.get_by_role("link", name="Users").click()
    page.get_by_label("Email", exact=True).fill("cashier@kin.cd")
    page.get_by_label("Name", exact=True).fill("Cashier One")
    page.get_by_label("Role", exact=True).select_option("cashier")
    page.get_by_label("KIN1").check()
    page.get_by_role("button", name="Create invitation").click()
    link = page.get_by_test_id("invite-link").inner_text()
    _shot(page, "users")
    context.close()

    other = browser.new_context(viewport={"width": 1280, "height": 900})
    other.set_default_timeout(15_000)
    cashier = other.new_page()
    cashier.goto(link)
    cashier.get_by_label("Choose a password").fill("cashier password 1")
    cashier.get_by_label("Repeat it").fill("cashier password 1")
    cashier.get_by_role("button", name="Create my account").click()
    cashier.get_by_label("Email").fill("cashier@kin.cd")
    cashier.get_by_label("Password").fill("cashier password 1")
    cashier.get_by_role("button", name="Sign in").click()
    expect(cashier.get_by_role("heading", name="Today", exact=True)).to_be_visible()
    nav = cashier.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Invoices")).to_be_visible()
    expect(nav.get_by_role("link", name="API keys")).to_have_count(0)
    response = cashier.goto(f"{base}/app/keys")
    assert response.status == 403
    expect(cashier.get_by_text("may not open this page")).to_be_visible()
    _audit(cashier, "forbidden")
    other.close()


# Every merchant page, in each language at a phone's width: (path, a word of that page in fr, es, en).
PAGES = [
    ("/app", ("Aujourd", "Hoy", "Today")),
    ("/app/invoices", ("Numéro fiscal", "Número fiscal", "Fiscal number")),
    ("{invoice}", ("Empreinte", "Firma", "Signature")),
    ("/app/outlets", ("Fuseau horaire", "Zona horaria", "Timezone")),
    ("/app/reports", ("Derniers rapports Z", "Últimos reportes Z", "Latest Z reports")),
    ("{z}", ("Par groupe de taxation", "Por alícuota", "Per tax group")),
    ("{x}", ("Par groupe de taxation", "Por alícuota", "Per tax group")),
    ("/app/settings", ("Votre langue", "Su idioma", "Your language")),
    ("/app/keys", ("Clés d'API", "Claves de API", "API keys")),
    ("/app/users", ("Utilisateurs", "Usuarios", "Users")),
    ("/app/webhooks", ("Webhooks", "Webhooks", "Webhooks")),
    ("/app/privacy", ("Données personnelles", "Privacidad", "Privacy")),
    ("/app/billing", ("Consommation et facturation", "Consumo y facturación", "Usage & billing")),
    ("/app/no-such-page", ("Page introuvable", "Página no encontrada", "Page not found")),
]
# Amount elements taller than one line (a wrapped "19 640,29"), and the page's overflow to the right.
LAYOUT = """() => ({
  width: document.documentElement.scrollWidth,
  wrapped: [...document.querySelectorAll('.amount')].filter(e => {
    const line = parseFloat(getComputedStyle(e).lineHeight) || 1.5 * parseFloat(getComputedStyle(e).fontSize);
    return e.getClientRects().length > 1 || e.getBoundingClientRect().height > line * 1.4;
  }).map(e => e.textContent),
})"""


def _sign_in_owner(page) -> None:  # noqa: ANN001
    # By id, not label: the sign-in page speaks the browser's language.
    page.locator("#email").fill("owner@kin.cd")
    page.locator("#password").fill(PASSWORD)
    page.locator("form[action^='/app/login'] button[type=submit]").click()
    expect(page.get_by_test_id("today-count")).to_be_visible()


def _choose_language(page, lang: str) -> None:  # noqa: ANN001
    """The signed-in user's own language, through the settings page ("": the organisation's)."""
    page.goto("/app/settings")
    page.get_by_test_id("my-locale").select_option(lang)
    page.locator("form[action='/app/settings/language'] button").click()
    if lang:
        expect(page.locator("html")).to_have_attribute("lang", lang)


def _languages(browser, base: str, org: dict) -> None:  # noqa: ANN001
    """The owner chooses each language in turn (settings) and opens every merchant page at 390 px."""
    context = browser.new_context(base_url=base, viewport={"width": 390, "height": 844}, is_mobile=True,
                                  has_touch=True, device_scale_factor=2)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto("/app/login?lang=fr")
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    _shot(page, "fr/login-mobile")
    _sign_in_owner(page)
    with httpx.Client(base_url=base, headers=org["key"], timeout=30) as http:
        invoice_id = http.get("/v1/invoices?limit=1").json()["data"][0]["id"]
        z_id = http.get("/v1/z-reports?limit=1").json()["data"][0]["id"]
    paths = {"{invoice}": f"/app/invoices/{invoice_id}", "{z}": f"/app/reports/z/{z_id}",
             "{x}": f"/app/reports/x/{org['outlets'][1]['id']}"}
    for i, lang in enumerate(("fr", "es", "en")):
        _choose_language(page, lang)
        for path, words in PAGES:
            url = paths.get(path, path)
            response = page.goto(url)
            assert response.status == (404 if "no-such" in url else 200), (lang, url, response.status)
            expect(page.locator("html")).to_have_attribute("lang", lang)
            expect(page.locator("body")).to_contain_text(words[i])  # others' pages: their nav label
            name = url.strip("/").replace("/", "-") if path.startswith("/") else path.strip("{}")
            shot = f"{lang}/{name}-mobile" if path in ("/app", "{invoice}", "/app/invoices") else None
            if shot:
                _shot(page, shot)
            else:
                _audit(page, f"{lang} {url} (390 px)")
            layout = page.evaluate(LAYOUT)
            if layout["width"] > 390:
                FINDINGS.append(f"{lang} {url}: the page is {layout['width']} px wide at 390 px")
            if layout["wrapped"]:
                FINDINGS.append(f"{lang} {url}: amounts wrap: {layout['wrapped'][:3]}")
    _choose_language(page, "")  # back to the organisation's language for whoever comes next
    context.close()
    # Desktop, once per language: the README's screenshots (French first: the DRC).
    context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto("/app/login")
    _sign_in_owner(page)
    for lang in ("fr", "es", "en"):
        _choose_language(page, lang)
        for url, name in (("/app", "home"), ("/app/invoices", "invoices"), (paths["{invoice}"], "invoice"),
                          ("/app/reports", "reports")):
            page.goto(url)
            assert page.evaluate("document.documentElement.scrollWidth") <= 1280
            _shot(page, f"{lang}/{name}")
    context.close()


def _operator(browser, base: str, org: dict, event_id: str) -> None:  # noqa: ANN001
    context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto("/ops")
    _audit(page, "ops-login")
    page.get_by_text("Sign in with the operator token (automation)").click()  # automation's way in
    page.get_by_label("Operator token").fill(OPERATOR)
    page.get_by_role("button", name="Sign in with the token").click()
    expect(page.get_by_role("heading", name="Pipeline", exact=True)).to_be_visible()
    expect(page.get_by_text(event_id)).to_be_visible()
    _shot(page, "ops-pipeline")
    page.get_by_role("button", name=f"Replay {event_id}").click()
    expect(page.get_by_text("1 dead letter queued again.")).to_be_visible()
    expect(page.get_by_text(event_id)).to_have_count(0)
    page.get_by_role("link", name="Authority sync").click()
    expect(page.get_by_role("cell", name="KIN1")).to_be_visible()
    _shot(page, "ops-sync")
    page.get_by_role("link", name="Tenants & webhooks").click()
    expect(page.get_by_text(org["tenant"]["id"])).to_be_visible()
    _shot(page, "ops-tenants")
    context.close()

