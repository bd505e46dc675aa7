"""The invoices page's "Draft from text" and its drafts: a draft, its confidence and questions, "Approve & seal",
and "Approve for the assistant" (the single-use approval an assistant's key seals with)."""
from __future__ import annotations

from tests.assistants.test_drafts_api import TEXT, agent_key, draft, invoices, policy, seal
from tests.assistants.test_mcp import mcp, structured
from tests.dashboard.conftest import Browser, email, make_user


async def test_draft_from_text_then_approve_and_seal(owner, org):
    page = await owner.get("/app/invoices")
    assert 'action="/app/invoices/drafts"' in page.text
    r = await owner.post("/app/invoices/drafts", {"text": "Facture pour Kin Marché SARL NIF A1234567Z: 3 sacs de "
                                                          "ciment à 25000 FC", "locale": "fr"})
    assert r.status_code == 201, r.text[:500]
    assert 'data-testid="draft-confidence"' in r.text and 'data-testid="approve-seal"' in r.text
    action = r.text.split('action="/app/invoices/drafts/')[1].split('"')[0]
    sealed = await owner.post(f"/app/invoices/drafts/{action}")
    assert sealed.status_code == 303 and sealed.headers["location"].startswith("/app/invoices/inv_")
    again = await owner.get(f"/app/invoices/drafts/{action.split('/')[0]}")
    assert again.status_code == 200 and 'data-testid="approve-seal"' not in again.text


async def test_an_unsure_draft_shows_its_questions_and_no_seal_button(owner, org):
    await owner.get("/app/invoices")
    r = await owner.post("/app/invoices/drafts", {"text": "Facture 3 sacs de ciment"})
    assert r.status_code == 422 and 'data-testid="draft-questions"' in r.text
    assert 'data-testid="approve-seal"' not in r.text


async def test_the_page_shows_taxes_and_a_nul_character_is_a_form_error(owner, org):
    await owner.get("/app/invoices")
    r = await owner.post("/app/invoices/drafts", {"text": "Facture pour Kin Marché SARL NIF A1234567Z: 3 sacs de "
                                                          "ciment à 25000 FC", "locale": "fr"})
    assert r.status_code == 201 and 'data-testid="draft-taxes"' in r.text and 'data-testid="draft-total"' in r.text
    bad = await owner.post("/app/invoices/drafts", {"text": "a\x00b", "locale": "fr"})
    assert 400 <= bad.status_code < 500, bad.text[:300]
    assert "text" in bad.text


# --- "Approve for the assistant": a person's single-use approval, given to an assistant's key (seal_draft) ---

def _approval_id(html: str) -> str:
    return html.split('data-testid="approval-id">')[1].split("<")[0]


async def _agent_draft(client, org) -> tuple[dict, dict]:
    """Under the ``approval`` policy: an assistant's key and a draft it made."""
    await policy(client, org["key"], "approval")
    agent = await agent_key(client, org["key"])
    return agent, await draft(client, agent)


async def test_an_approval_made_in_the_console_lets_the_assistant_seal_exactly_once(app, client, owner, org):
    agent, d = await _agent_draft(client, org)
    listing = (await owner.get("/app/invoices")).text
    assert 'data-testid="draft-table"' in listing and f'href="/app/invoices/drafts/{d["id"]}"' in listing
    page = await owner.get(f"/app/invoices/drafts/{d['id']}")
    assert 'data-testid="approve-assistant"' in page.text
    assert (await owner.post(f"/app/invoices/drafts/{d['id']}/approvals", csrf=False)).status_code == 403
    made = await owner.post(f"/app/invoices/drafts/{d['id']}/approvals")
    assert made.status_code == 201, made.text[:500]
    approval_id = _approval_id(made.text)
    assert approval_id.startswith("apr_") and 'data-testid="approval-expires"' in made.text
    async with mcp(app, agent) as m:
        sealed = structured(await m.call_tool("seal_draft", {"draft_id": d["id"], "approval_id": approval_id}))
        assert sealed["replayed"] is False and sealed["invoice"]["fiscal_number"]
        again = structured(await m.call_tool("seal_draft", {"draft_id": d["id"], "approval_id": approval_id}))
        assert again["replayed"] is True and again["invoice"]["fiscal_number"] == sealed["invoice"]["fiscal_number"]
    assert [i["id"] for i in await invoices(client, org["key"])] == [sealed["invoice"]["id"]]
    # Used up, and bound to its draft: the same id seals no other draft.
    other = await draft(client, agent)
    refused = await seal(client, agent, other["id"], approval_id)
    assert refused.status_code == 404 and refused.json()["code"] == "draft_approval_not_found"
    # Over REST too: the console's approval seals once; a second call answers the same invoice.
    second = _approval_id((await owner.post(f"/app/invoices/drafts/{other['id']}/approvals")).text)
    first = await seal(client, agent, other["id"], second)
    assert first.status_code == 201, first.text
    replay = await seal(client, agent, other["id"], second)
    assert replay.status_code == 200 and replay.json()["fiscal_number"] == first.json()["fiscal_number"]
    assert len(await invoices(client, org["key"])) == 2
    log = (await client.get("/v1/audit-log", headers=org["key"])).json()["data"]
    assert {e["details"]["approval_id"] for e in log if e["action"] == "invoice_draft.approved"} == {approval_id, second}


async def test_only_a_person_who_may_seal_and_approve_makes_an_approval(app, client, owner, org):
    agent, d = await _agent_draft(client, org)
    for role in ("accountant", "cashier"):  # no invoices:write; invoices:write but no invoices:approve
        await make_user(app, org, email(org, role), role, [org["outlet"]["id"]] if role == "cashier" else [])
        b = Browser(app)
        await b.login(email(org, role))
        page = await b.get(f"/app/invoices/drafts/{d['id']}")
        assert page.status_code == 200 and 'data-testid="approve-assistant"' not in page.text
        r = await b.post(f"/app/invoices/drafts/{d['id']}/approvals")
        assert r.status_code == 403 and 'data-testid="approval-id"' not in r.text, (role, r.status_code)
        await b.aclose()
    # Nor whoever drafted it: a person's own draft is sealed by them ("Approve & seal"), not handed over.
    await owner.get("/app/invoices")
    mine = await owner.post("/app/invoices/drafts", {"text": TEXT, "locale": "fr"})
    own_id = mine.text.split('action="/app/invoices/drafts/')[1].split("/")[0]
    assert 'data-testid="approve-assistant"' not in mine.text
    r = await owner.post(f"/app/invoices/drafts/{own_id}/approvals")
    assert r.status_code == 403 and "approval-id" not in r.text
    assert await invoices(client, org["key"]) == []


async def test_another_tenants_draft_is_not_found(app, client, owner, org, new_tenant):
    _, stranger = await new_tenant("Other SARL", "B0000002C")
    await client.post("/v1/outlets", json={"code": "X1", "name": "X"}, headers=stranger)
    theirs = await draft(client, await agent_key(client, stranger))
    await owner.get("/app/invoices")
    assert (await owner.get(f"/app/invoices/drafts/{theirs['id']}")).status_code == 404
    r = await owner.post(f"/app/invoices/drafts/{theirs['id']}/approvals")
    assert r.status_code == 404 and "approval-id" not in r.text
    assert theirs["id"] not in (await owner.get("/app/invoices")).text
