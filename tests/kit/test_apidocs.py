"""/docs and /redoc work with no internet: Swagger UI and ReDoc are served from our own origin.

The browser test blocks every request that leaves loopback (as an offline machine or a strict proxy
would) and checks that both pages render the API's operations with no request refused by the pages'
Content-Security-Policy.
"""
from __future__ import annotations

import base64
import hashlib
import os
import re
import time
from urllib.parse import urlsplit

import httpx
import pytest

from stalela.kit import apidocs
from tests.support.server import start_server

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - the test extras install it
    sync_playwright = None


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_the_pages_load_nothing_from_elsewhere(client, path):
    page = await client.get(path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert urls and all(u.startswith("/static/apidocs/") for u in urls), urls
    assert "googleapis" not in page.text and "jsdelivr" not in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "https:" not in csp
    for script in re.findall(r"<script>(.*?)</script>", page.text, re.DOTALL):  # Swagger UI's initialiser
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp
    for url in urls:
        asset = await client.get(url)
        assert asset.status_code == 200 and asset.headers["x-content-type-options"] == "nosniff", url
        assert asset.headers["content-type"].split(";")[0] in ("text/javascript", "application/javascript",
                                                               "text/css", "image/png"), url


async def test_only_the_vendored_files_are_served(client):
    assert (await client.get("/static/apidocs/redoc/LICENSE")).text.startswith("The MIT License")
    assert "Apache License" in (await client.get("/static/apidocs/swagger-ui/LICENSE")).text
    for path in ("/static/apidocs/redoc/nope.js", "/static/apidocs/..%2F..%2Fapidocs.py/x",
                 "/static/apidocs/swagger-ui/..%2F..%2F..%2Fconfig.py"):
        assert (await client.get(path)).status_code == 404, path
    assert set(apidocs.FILES) >= {"swagger-ui/swagger-ui-bundle.js", "swagger-ui/swagger-ui.css",
                                  "redoc/redoc.standalone.js"}


def at_least(locator, n: int, seconds: float = 30) -> None:  # noqa: ANN001
    """Wait until ``locator`` matches more than ``n`` elements (polled from here: the page's CSP rightly
    refuses the string evaluation ``wait_for_function`` would use)."""
    deadline = time.monotonic() + seconds
    while (count := locator.count()) <= n:
        assert time.monotonic() < deadline, f"only {count} elements"
        time.sleep(0.25)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = start_server({}, tmp_path_factory.mktemp("apidocs"))
    yield live
    live.stop()


@pytest.mark.e2e
@pytest.mark.skipif(sync_playwright is None, reason="playwright is not installed (pip install -e '.[test]')")
@pytest.mark.skipif(not os.path.exists(CHROMIUM),
                    reason=f"{CHROMIUM} is absent: install Debian's chromium (apt-get install chromium)")
def test_docs_and_redoc_render_offline(server):
    blocked: list[str] = []
    problems: list[str] = []

    def offline(route) -> None:  # noqa: ANN001
        host = urlsplit(route.request.url).hostname
        if route.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort("internetdisconnected")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.route("**/*", offline)
            # Refusals (CSP, failed loads) and uncaught errors; not Swagger UI's notes about our deep links.
            page.on("console", lambda m: problems.append(m.text) if m.type == "error"
                    and not m.text.startswith("Deprecated:") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))

            page.goto(f"{server.base_url}/docs")
            expect(page.locator(".opblock-summary-path", has_text="/healthz").first).to_be_visible(timeout=30_000)
            # Swagger UI renders what is in view: a deep link scrolls to an operation and opens it.
            page.goto("about:blank")  # a fresh load: Swagger UI reads the deep link when it starts
            page.goto(f"{server.base_url}/docs#/verification/{operation_id(server, '/verify/{invoice_id}')}")
            expect(page.get_by_text("Not known to Stalela").first).to_be_visible(timeout=30_000)
            page.goto("about:blank")
            page.goto(f"{server.base_url}/docs#/invoices/{operation_id(server, '/v1/invoices', 'post')}")
            expect(page.get_by_text("Validate, number, sign, chain and store an invoice").first).to_be_visible(timeout=30_000)

            page.goto(f"{server.base_url}/redoc")
            expect(page.locator("h2", has_text="Seal Invoice").first).to_be_attached(timeout=30_000)
            expect(page.locator(".menu-content")).to_be_visible()
            at_least(page.locator("h2"), 50)  # every operation
        finally:
            browser.close()
    assert blocked == [], blocked  # nothing even tried to leave the machine
    # ReDoc's sidebar credit shows Redocly's logo from their CDN: the CSP stops it before any request
    # (the image then hides itself). Nothing else may be refused.
    assert [p for p in problems if "cdn.redoc.ly/redoc/logo-mini.svg" not in p] == [], problems


def operation_id(server, path: str, method: str = "get") -> str:  # noqa: ANN001
    return httpx.get(f"{server.base_url}/openapi.json").json()["paths"][path][method]["operationId"]
