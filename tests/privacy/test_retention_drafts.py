"""Invoice drafts leave by time, on SQLite and PostgreSQL: a draft untouched for 90 days goes (a sealed one too,
whose invoice stays and still verifies), its approvals with it; a 30-day-old draft stays; a legal hold on a
draft's outlet keeps it, another outlet's hold does not; the run is marked, graced and audited like the others."""
from __future__ import annotations

import asyncio
import json

from sqlalchemy import func, select, update

from stalela.assistants.models import DraftApproval, InvoiceDraft
from stalela.assistants.repository import DraftRepository
from stalela.privacy import retention_service as service
from stalela.tenancy.context import bind_tenant
from tests.assistants.test_drafts_api import TEXT, agent_key, approve, draft, policy, seal
from tests.auth.test_users import bearer, login, make_user
from tests.privacy.support import DAY, now
from tests.support.verify import verify_independently

HOLDS = "/v1/privacy/retention/holds"
PURGER = "stale_invoice_drafts"


async def _age(db, tenant_id: str, ages: dict[str, int], at) -> None:  # noqa: ANN001
    """Move each draft's last change ``days`` before ``at`` (created a little before that)."""
    async with db.transaction() as s:
        await bind_tenant(s, tenant_id)
        for draft_id, days in ages.items():
            await s.execute(update(InvoiceDraft).where(InvoiceDraft.id == draft_id)
                            .values(created_at=at - (days + 2) * DAY, updated_at=at - days * DAY))


async def _approvals(db, tenant_id: str) -> dict[str, int]:  # noqa: ANN001
    async with db.transaction(readonly=True) as s:
        await bind_tenant(s, tenant_id)
        found = await s.execute(select(DraftApproval.draft_id, func.count()).group_by(DraftApproval.draft_id))
        return dict(found.all())


def _drafts(result: dict) -> dict:
    return next(e for e in result["purgers"] if e["purger"] == PURGER)


async def test_a_stale_sealed_draft_goes_with_its_approvals_and_its_invoice_stays(app, client, new_tenant, settings):
    tenant, root = await new_tenant("Purge SARL", "PRG0001")
    shop = (await client.post("/v1/outlets", json={"code": "KIN1", "name": "Gombe"}, headers=root)).json()
    held_shop = (await client.post("/v1/outlets", json={"code": "KIN2", "name": "Limete"}, headers=root)).json()
    await make_user(client, root, "boss@purge.cd", "admin")
    person = bearer((await login(client, "boss@purge.cd", tenant_id=tenant["id"])).json())
    await policy(client, root, "approval")
    agent, agent_b = await agent_key(client, root), await agent_key(client, root, outlet_id=held_shop["id"])

    # The assistant drafts, a person approves twice, the assistant seals with one approval.
    old = await draft(client, agent)
    assert old["invoice"]["outlet_id"] == shop["id"]
    used = (await approve(client, person, old["id"])).json()
    assert (await approve(client, person, old["id"])).status_code == 201
    sealed = await seal(client, agent, old["id"], used["id"])
    assert sealed.status_code == 201, sealed.text
    invoice = sealed.json()
    fresh = await draft(client, agent)
    assert (await approve(client, person, fresh["id"])).status_code == 201
    held = await draft(client, agent_b, TEXT)
    assert held["invoice"]["outlet_id"] == held_shop["id"]
    assert (await client.delete(f"/v1/invoice-drafts/{held['id']}", headers=person)).json()["status"] == "discarded"

    at = now()
    await _age(app.state.db, tenant["id"], {old["id"]: 91, fresh["id"]: 30, held["id"]: 91}, at)
    hold = await client.post(HOLDS, json={"reason": "dispute at Limete", "scope": {"outlet_id": held_shop["id"]}},
                             headers=root)
    assert hold.status_code == 201, hold.text

    # The preview names the 91-day-old sealed draft only: the 30-day-old one is inside its rule, and the other
    # 91-day-old one is held by its outlet's hold (which does not reach the first outlet's draft).
    with service.use_clock(lambda: at):
        preview = (await client.get("/v1/privacy/retention/preview", headers=root)).json()
    entry = _drafts(preview)
    assert (entry["category"], entry["rule"], entry["days"]) == ("personal", "days:90@updated_at", 90)
    assert entry["mark"] == {"count": 1, "sample": [old["id"]]} and entry["purge"]["count"] == 0
    assert _drafts(await service.run_tenant(app.state.db, settings, tenant["id"], at=at))["mark"]["count"] == 1

    # Marked, not gone: the grace first.
    assert (await client.get(f"/v1/invoice-drafts/{old['id']}", headers=agent)).status_code == 200
    run = await service.run_tenant(app.state.db, settings, tenant["id"], at=at + 7 * DAY)
    assert _drafts(run)["purge"] == {"count": 1, "sample": [old["id"]]}

    gone = await client.get(f"/v1/invoice-drafts/{old['id']}", headers=agent)
    assert (gone.status_code, gone.json()["code"]) == (404, "invoice_draft_not_found")
    assert (await client.get(f"/v1/invoice-drafts/{fresh['id']}", headers=agent)).status_code == 200
    assert (await client.get(f"/v1/invoice-drafts/{held['id']}", headers=person)).json()["status"] == "discarded"
    listed = (await client.get("/v1/invoice-drafts", headers=person)).json()["data"]
    assert {d["id"] for d in listed} == {fresh["id"], held["id"]}
    # Both approvals of the purged draft went with it; the fresh draft's stays.
    assert await _approvals(app.state.db, tenant["id"]) == {fresh["id"]: 1}

    # The invoice is untouched, and verifies: independently with its key, and on the public page.
    again = await client.get(f"/v1/invoices/{invoice['id']}", headers=root)
    assert again.status_code == 200 and again.json()["seal"] == invoice["seal"]
    jwk = (await client.get(f"/v1/keys/{invoice['seal']['key_id']}")).json()
    verify_independently(again.json(), jwk)
    qr_path = "/" + invoice["qr"].split("://", 1)[1].split("/", 1)[1]  # what the receipt's QR code opens
    page = await client.get(qr_path, headers={"Accept": "application/json"})
    assert page.status_code == 200 and page.json()["authentic"] is True

    # Audit: counts only, never the draft's id or text.
    log = (await client.get("/v1/audit-log", headers=root)).json()["data"]
    runs = [e for e in log if e["action"] == "privacy.retention_run"]
    assert runs[0]["details"]["counts"][PURGER] == {"marked": 0, "purged": 1, "unmarked": 0}
    assert old["id"] not in json.dumps(runs) and "Kin Marché" not in json.dumps(runs)

    # Released, the held draft is marked anew, gets its full grace, then goes; the fresh one is still inside.
    assert (await client.delete(f"{HOLDS}/{hold.json()['id']}", headers=root)).status_code == 200
    later = at + 8 * DAY
    assert _drafts(await service.run_tenant(app.state.db, settings, tenant["id"], at=later))["mark"] == {
        "count": 1, "sample": [held["id"]]}
    assert _drafts(await service.run_tenant(app.state.db, settings, tenant["id"], at=later + 7 * DAY))["purge"] == {
        "count": 1, "sample": [held["id"]]}
    assert (await client.get(f"/v1/invoice-drafts/{held['id']}", headers=person)).status_code == 404
    assert (await client.get(f"/v1/invoice-drafts/{fresh['id']}", headers=agent)).status_code == 200


async def test_a_change_keeps_a_marked_draft_and_a_personal_policy_sets_its_period(app, client, new_tenant, settings):
    """A PATCH after the mark makes the draft fresh again: it is unmarked, not purged. The tenant's ``personal``
    policy replaces the 90 days (for invitations too)."""
    tenant, root = await new_tenant("Policy SARL", "PRG0002")
    await client.post("/v1/outlets", json={"code": "KIN1", "name": "Gombe"}, headers=root)
    agent = await agent_key(client, root)
    d = await draft(client, agent)
    at = now()
    await _age(app.state.db, tenant["id"], {d["id"]: 95}, at)
    assert _drafts(await service.run_tenant(app.state.db, settings, tenant["id"], at=at))["mark"]["count"] == 1

    changed = {**d["invoice"], "lines": [{**d["invoice"]["lines"][0], "quantity": "4"}]}
    r = await client.patch(f"/v1/invoice-drafts/{d['id']}", json={"invoice": changed}, headers=agent)
    assert r.status_code == 200, r.text
    # The patch stamped the real time; the run, a week later, finds it fresh and drops the mark.
    run = _drafts(await service.run_tenant(app.state.db, settings, tenant["id"], at=at + 7 * DAY))
    assert (run["purge"]["count"], run["unmark"]["sample"]) == (0, [d["id"]])

    r = await client.put("/v1/privacy/retention/policies/personal", json={"days": 10}, headers=root)
    assert r.status_code == 200, r.text
    await _age(app.state.db, tenant["id"], {d["id"]: 11}, at)
    with service.use_clock(lambda: at):
        preview = (await client.get("/v1/privacy/retention/preview", headers=root)).json()
    assert (_drafts(preview)["days"], _drafts(preview)["mark"]["sample"]) == (10, [d["id"]])


async def _marked_draft(app, client, new_tenant, settings, name: str, tax_id: str):  # noqa: ANN001, ANN202
    """A tenant with an outlet and a draft last changed 95 days ago, marked by a run: due a week later."""
    tenant, root = await new_tenant(name, tax_id)
    await client.post("/v1/outlets", json={"code": "KIN1", "name": "Gombe"}, headers=root)
    d = await draft(client, await agent_key(client, root))
    at = now()
    await _age(app.state.db, tenant["id"], {d["id"]: 95}, at)
    await service.run_tenant(app.state.db, settings, tenant["id"], at=at)
    return tenant, root, d, at


async def test_a_draft_changed_while_its_purge_waits_stays(app, client, new_tenant, settings):
    """The drafting service's row lock against the purge's: a change holding the draft's lock when the purge
    comes (an approval, a patch, a seal) commits first, and the purge, re-checking, leaves the draft."""
    tenant, root, d, at = await _marked_draft(app, client, new_tenant, settings, "Race SARL", "PRG0003")

    async with app.state.db.transaction() as s:  # what patch_draft does: lock the row, change it
        await bind_tenant(s, tenant["id"])
        row = await DraftRepository(s).locked(d["id"])
        purge = asyncio.create_task(service.run_tenant(app.state.db, settings, tenant["id"], at=at + 7 * DAY))
        await asyncio.sleep(0.5)
        assert not purge.done()  # waiting for the draft's lock (PostgreSQL) or the writer's (SQLite)
        row.updated_at = at + 7 * DAY
    assert _drafts(await purge)["purge"]["count"] == 0
    assert (await client.get(f"/v1/invoice-drafts/{d['id']}", headers=root)).status_code == 200


async def test_an_approval_given_while_the_purge_waits_goes_with_its_draft(app, client, new_tenant, settings):
    """The lock race itself: an approval row added under the draft's lock without changing ``updated_at`` (as
    approvals did before they counted as the draft's use) leaves the draft due once the lock is gone; the purge
    took the draft's lock before deleting its approvals, so the new approval goes too, and none is left naming a
    draft that is gone. A real approval refreshes the draft (the next test)."""
    tenant, root, d, at = await _marked_draft(app, client, new_tenant, settings, "Orphan SARL", "PRG0004")

    async with app.state.db.transaction() as s:  # what approve does: lock the draft, add an approval
        await bind_tenant(s, tenant["id"])
        await DraftRepository(s).locked(d["id"])
        purge = asyncio.create_task(service.run_tenant(app.state.db, settings, tenant["id"], at=at + 7 * DAY))
        await asyncio.sleep(0.5)
        assert not purge.done()
        s.add(DraftApproval(tenant_id=tenant["id"], id="apr_late", draft_id=d["id"], content_hash=d["content_hash"],
                            expires_at=at + DAY, approved_by="user:usr_late", created_at=at))
    assert _drafts(await purge)["purge"]["count"] == 1
    assert (await client.get(f"/v1/invoice-drafts/{d['id']}", headers=root)).status_code == 404
    assert await _approvals(app.state.db, tenant["id"]) == {}


async def test_a_persons_approval_keeps_the_draft_for_its_seal(app, client, new_tenant, settings):
    """Review finding: a draft approved in the week before its purge was deleted and its seal answered 404.
    Approving is the draft's use: the purge counts from it."""
    tenant, root, d, at = await _marked_draft(app, client, new_tenant, settings, "Approved SARL", "PRG0005")
    await policy(client, root, "approval")
    await make_user(client, root, "boss@approved.cd", "admin")
    person = bearer((await login(client, "boss@approved.cd", tenant_id=tenant["id"])).json())
    approval = await approve(client, person, d["id"])
    assert approval.status_code == 201, approval.text
    assert _drafts(await service.run_tenant(app.state.db, settings, tenant["id"], at=at + 7 * DAY))["purge"]["count"] == 0
    agent = await agent_key(client, root)
    sealed = await seal(client, agent, d["id"], approval.json()["id"])
    assert sealed.status_code == 201, sealed.text


async def test_a_hold_on_a_day_the_draft_was_changed_keeps_it(app, client, new_tenant, settings):
    """Review finding: a date-range hold matched the draft's creation day only; a draft spans its days."""
    tenant, root = await new_tenant("Span SARL", "PRG0006")
    await client.post("/v1/outlets", json={"code": "KIN1", "name": "Gombe"}, headers=root)
    d = await draft(client, await agent_key(client, root))
    at = now()
    await _age(app.state.db, tenant["id"], {d["id"]: 95}, at)  # created 97 days ago, last changed 95 days ago
    changed = (at - 95 * DAY).date().isoformat()
    hold = await client.post(HOLDS, json={"reason": "audit of that day", "scope": {"from": changed,
                                                                              "to": changed}}, headers=root)
    assert hold.status_code == 201, hold.text
    for later in (0, 8):
        result = await service.run_tenant(app.state.db, settings, tenant["id"], at=at + later * DAY)
        assert _drafts(result)["purge"]["count"] == 0
    assert (await client.get(f"/v1/invoice-drafts/{d['id']}", headers=root)).status_code == 200

