""""Draft from text" in a real browser (Debian's Chromium, Playwright, a real `stalela serve`): the owner
drafts from a sentence, reads the confidence, taxes and total, approves and seals; an unsure draft shows its
questions and no seal button. Every screen is audited with axe-core. Skips without Chromium or Playwright."""
from __future__ import annotations

import asyncio
import re
from pathlib import Path

from tests.dashboard import test_browser as console
from tests.dashboard.test_browser import ARGS, CHROMIUM, FINDINGS, PASSWORD, _audit, _shot

pytestmark = console.pytestmark
server = console.server


def _in_english(server, tenant_id: str) -> None:  # noqa: ANN001
    """The organisation's language set to English, the wording this test reads (a DRC one defaults to French)."""
    from sqlalchemy import update

    from stalela.db.session import Database
    from stalela.tenancy.context import bind_platform
    from stalela.tenancy.models import Tenant

    url = f"sqlite+aiosqlite:///{Path(server.log_path).parent / 'stalela.db'}"

    async def run() -> None:
        db = Database(url)
        try:
            async with db.transaction() as session:
                await bind_platform(session)
                await session.execute(update(Tenant).where(Tenant.id == tenant_id).values(locale="en"))
        finally:
            await db.dispose()

    asyncio.run(run())


def test_draft_from_text_approve_and_seal_in_chromium(server):
    base = server.base_url
    org = console._setup_tenant(base)
    _in_english(server, org["tenant"]["id"])
    with console.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
            context.set_default_timeout(15_000)
            page = context.new_page()
            page.goto("/app/invoices")
            page.get_by_label("Email").fill("owner@kin.cd")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            console.expect(page.get_by_role("heading", name="Invoices", exact=True)).to_be_visible()
            # An unsure request: its questions, and no way to seal it.
            page.get_by_text("Draft from text").click()
            page.get_by_label("Describe the invoice (Spanish or French)").fill("Facture 3 sacs de ciment")
            page.get_by_role("button", name="Draft", exact=True).click()
            console.expect(page.get_by_test_id("draft-questions")).to_be_visible()
            console.expect(page.get_by_test_id("approve-seal")).to_have_count(0)
            _audit(page, "draft-unsure")
            # A clear one: confidence, taxes, total; approved and sealed by the person.
            page.goto("/app/invoices")
            page.get_by_text("Draft from text").click()
            page.get_by_label("Describe the invoice (Spanish or French)").fill(
                "Facture pour Kin Marché SARL NIF A1234567Z: 3 sacs de ciment à 25000 FC")
            page.get_by_label("Language").select_option("fr")
            page.get_by_role("button", name="Draft", exact=True).click()
            console.expect(page.get_by_test_id("draft-confidence")).to_be_visible()
            console.expect(page.get_by_test_id("draft-taxes")).to_be_visible()
            console.expect(page.get_by_test_id("draft-total")).to_have_text(re.compile(r"\d"))
            _shot(page, "draft")
            _audit(page, "draft-accepted")
            page.get_by_test_id("approve-seal").click()
            console.expect(page).to_have_url(re.compile(r"/app/invoices/inv_"))
            console.expect(page.get_by_text("Kin Marché SARL").first).to_be_visible()
            _audit(page, "draft-sealed")
            context.close()
        finally:
            browser.close()
    assert not FINDINGS, "accessibility (axe-core):\n" + "\n".join(FINDINGS)
