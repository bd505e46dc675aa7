"""Erasure's hard cases (from an independent review), on SQLite and PostgreSQL: one person first known under
two subjects, a buyer returning after retention shredded their key, a user who is also a buyer, a released
tombstone across a restart, a ciphertext that does not authenticate."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import text

from stalela.fiscal.subjects import service as subjects
from stalela.privacy import erasure_service
from stalela.privacy import retention_service
from stalela.tenancy.context import bind_tenant
from tests.support.invoices import sample_invoice

UTC = timezone.utc


async def _shop(client, new_tenant, tax_id):
    tenant, headers = await new_tenant("Boutique SARL", tax_id)
    outlet = (await client.post("/v1/outlets", json={"code": "S1", "name": "Shop"}, headers=headers)).json()

    async def seal(buyer, status=201):
        r = await client.post("/v1/invoices", json=sample_invoice(outlet["id"], buyer=buyer), headers=headers)
        assert r.status_code == status, r.text
        return r.json()

    async def erase(app, settings, subject):
        r = await client.post("/v1/privacy/erasure-requests", json={"subject": subject}, headers=headers)
        assert r.status_code == 202, r.text
        await erasure_service.process(app.state.db, settings, tenant["id"], r.json()["id"])
        return (await client.get(f"/v1/privacy/erasure-requests/{r.json()['id']}", headers=headers)).json()

    async def buyer_of(inv):
        return (await client.get(f"/v1/invoices/{inv['id']}", headers=headers)).json()

    return tenant, headers, seal, erase, buyer_of


async def test_one_person_first_known_by_email_then_by_tax_id_is_erased_whole(app, client, new_tenant, settings):
    tenant, _, seal, erase, buyer_of = await _shop(client, new_tenant, "A7654321X")
    a = await seal({"type": "PP", "name": "Paul Ilunga", "email": "paul@example.cd"})
    b = await seal({"type": "PP", "name": "Paul Ilunga", "tax_id": "A1111111P"})
    c = await seal({"type": "PP", "name": "Paul Ilunga", "tax_id": "A1111111P", "email": "paul@example.cd"})
    d = await seal({"type": "PP", "name": "Paul Ilunga", "email": "paul@example.cd"})  # after the merge
    async with app.state.db.transaction() as s:
        await bind_tenant(s, tenant["id"])
        by_mail = await subjects.find_subject(s, settings, tenant["id"], email="paul@example.cd")
        by_tax = await subjects.find_subject(s, settings, tenant["id"], tax_id="A1111111P")
        assert by_mail == by_tax  # one person, one subject to find
        assert len(await subjects.with_merged(s, {by_mail})) == 2
    done = await erase(app, settings, {"email": "paul@example.cd"})
    assert done["status"] == "completed"
    for inv in (a, b, c, d):
        shown = await buyer_of(inv)
        assert shown["buyer"] is None and shown["buyer_status"] == "restricted", (inv["id"], shown["buyer"])
    await seal({"type": "PP", "tax_id": "A1111111P"}, status=409)  # either identifier is refused now


async def test_a_buyer_returning_after_retention_shredded_their_key_can_be_erased(app, client, new_tenant, settings):
    tenant, _, seal, erase, buyer_of = await _shop(client, new_tenant, "A7654321Z")
    buyer = {"type": "PP", "name": "Jean Mukendi", "email": "jean@example.cd"}
    await seal(buyer)
    async with app.state.db.transaction() as s:
        await bind_tenant(s, tenant["id"])
        old = await subjects.find_subject(s, settings, tenant["id"], email="jean@example.cd")
        await s.execute(text("UPDATE privacy_subjects SET last_seen_at = :t WHERE id = :i"),
                        {"t": datetime(2010, 6, 1, tzinfo=UTC), "i": old})
    assert (await retention_service.run_tenant(app.state.db, settings, tenant["id"]))["shred"]["count"] == 1
    new = await seal(buyer)  # the buyer comes back: a new subject, findable by the same e-mail
    async with app.state.db.transaction() as s:
        await bind_tenant(s, tenant["id"])
        assert await subjects.find_subject(s, settings, tenant["id"], email="jean@example.cd") not in (None, old)
    await erase(app, settings, {"email": "jean@example.cd"})
    shown = await buyer_of(new)
    assert shown["buyer"] is None and shown["buyer_status"] == "restricted"


async def test_a_users_erasure_does_not_refuse_the_same_person_as_a_buyer_even_after_a_restart(
        app, client, new_tenant, settings, operator_headers):
    tenant, headers, seal, _, _ = await _shop(client, new_tenant, "A7654321Y")
    r = await client.post("/v1/users", json={"email": "amina@example.cd", "name": "Amina K", "role": "cashier",
                                             "password": "correct horse battery staple 9"}, headers=headers)
    assert r.status_code == 201, r.text
    buyer = {"type": "PP", "name": "Amina K", "email": "amina@example.cd"}
    await seal(buyer)
    r = await client.post(f"/v1/tenants/{tenant['id']}/erasure-requests", json={"subject": {"email": "amina@example.cd"}},
                          headers=operator_headers)
    await erasure_service.process(app.state.db, settings, tenant["id"], r.json()["id"])
    await seal(buyer)
    assert await erasure_service.replay_journal(app.state.db, settings) >= 1  # a restart
    await seal(buyer)


async def test_a_tombstone_released_for_a_new_customer_stays_released_across_a_restart(app, client, new_tenant, settings):
    tenant, _, seal, erase, buyer_of = await _shop(client, new_tenant, "A7654321T")
    await seal({"type": "PP", "name": "Old Owner", "email": "shared@example.cd"})
    await erase(app, settings, {"email": "shared@example.cd"})
    newcomer = {"type": "PP", "name": "New Customer", "email": "shared@example.cd"}
    await seal(newcomer, status=409)
    first = await seal({**newcomer, "new_subject": True})
    assert await erasure_service.replay_journal(app.state.db, settings) >= 1
    await seal(newcomer)  # not refused again by the replay
    await erase(app, settings, {"email": "shared@example.cd"})  # and their own erasure reaches them
    shown = await buyer_of(first)
    assert shown["buyer"] is None and shown["buyer_status"] == "restricted"


async def test_a_ciphertext_that_does_not_authenticate_is_reported_not_raised(app, client, new_tenant, settings):
    tenant, _, seal, _, _ = await _shop(client, new_tenant, "A7654321S")
    a = await seal({"type": "PP", "name": "Alice", "email": "alice@example.cd"})
    b = await seal({"type": "PP", "name": "Bob", "email": "bob@example.cd"})
    async with app.state.db.transaction() as s:
        await bind_tenant(s, tenant["id"])
        rows = dict((await s.execute(text("SELECT id, buyer_subject FROM invoices WHERE id IN (:a, :b)"),
                                     {"a": a["id"], "b": b["id"]})).all())
        blob = (await s.execute(text("SELECT buyer_sealed FROM invoices WHERE id = :i"), {"i": b["id"]})).scalar()
        # b's ciphertext read as a's (a bug or a tampered row): AES-GCM's associated data refuses it.
        moved = subjects.Sealed(a["id"], rows[a["id"]], bytes(blob), a["seal"]["payload"]["buyer_commitment"])
        shown = await subjects.reveal(s, settings, tenant["id"], [moved], purpose="tenant")
    assert shown == {a["id"]: {"status": "unverifiable"}}
