"""Seal v2 over HTTP on SQLite and PostgreSQL: the buyer is committed to, stored only encrypted under its
subject's key, shown to whom may see it, and gone for everyone once its key is shredded."""
from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy import text

from stalela.fiscal.core.disclosure import check_commitment
from stalela.fiscal.subjects import service as subjects
from stalela.kit import canonical
from stalela.tenancy.context import bind_tenant
from tests.support.invoices import sample_invoice

NAME, EMAIL, TAX_ID = "Jeanne Mukendi Kabasele", "jeanne.mukendi@example.cd", "CD-PP-99881"
PERSON = {"type": "PP", "name": NAME, "tax_id": TAX_ID, "email": EMAIL, "phone": "+243 81 555 0101"}


@pytest.fixture
async def shop(client, new_tenant):
    tenant, headers = await new_tenant("Boutique SARL", "A7654321Z")
    outlet = (await client.post("/v1/outlets", json={"code": "B1", "name": "Boutique"}, headers=headers)).json()
    return tenant, headers, outlet


async def _all_text(db) -> str:
    """Every column of every table, as text (bytes decoded leniently): what a plaintext scanner reads."""
    out = []
    async with db.transaction() as s:
        dialect = s.bind.dialect.name
        if dialect == "postgresql":
            await s.execute(text("SELECT set_config('stalela.platform', 'on', true)"))
            tables = (await s.execute(text(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))).scalars().all()
        else:
            tables = (await s.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))).scalars().all()
        for table in tables:
            for row in (await s.execute(text(f'SELECT * FROM "{table}"'))).all():
                for value in row:
                    out.append(value.decode("latin-1") if isinstance(value, (bytes, memoryview)) and not
                               isinstance(value, str) else str(value))
    return "\n".join(str(v) if not isinstance(v, memoryview) else bytes(v).decode("latin-1") for v in out)


async def test_the_buyer_is_committed_to_and_never_stored_in_clear(client, shop, db):
    tenant, headers, outlet = shop
    r = await client.post("/v1/invoices", json=sample_invoice(outlet["id"], buyer=PERSON),
                          headers={**headers, "Idempotency-Key": "k-1"})
    assert r.status_code == 201, r.text
    inv = r.json()
    payload = inv["seal"]["payload"]
    assert payload["v"] == 2 and payload["buyer_tax_id"] is None  # a natural person's tax id is not signed in clear
    assert NAME not in json.dumps(payload) and TAX_ID not in json.dumps(payload)
    assert inv["buyer"]["name"] == NAME and inv["buyer"]["email"] == EMAIL
    # Anyone shown the buyer and its salt checks them against the signed commitment.
    expected = hashlib.sha256(canonical.dumps({"salt": inv["buyer_salt"], "buyer": inv["buyer"]})).hexdigest()
    assert payload["buyer_commitment"] == expected
    assert check_commitment(payload["buyer_commitment"], inv["buyer_salt"], inv["buyer"])
    assert not check_commitment(payload["buyer_commitment"], inv["buyer_salt"], {**inv["buyer"], "name": "X"})
    # Read back, replayed, listed: the same buyer.
    assert (await client.get(f"/v1/invoices/{inv['id']}", headers=headers)).json()["buyer"] == inv["buyer"]
    replay = await client.post("/v1/invoices", json=sample_invoice(outlet["id"], buyer=PERSON),
                               headers={**headers, "Idempotency-Key": "k-1"})
    assert replay.json()["buyer"] == inv["buyer"] and replay.json()["buyer_salt"] == inv["buyer_salt"]
    listed = (await client.get("/v1/invoices", headers=headers)).json()["data"]
    assert listed[0]["buyer"] == inv["buyer"]
    # Nowhere in the database in clear (the document, the idempotency record, the outbox...).
    stored = await _all_text(db)
    for secret in (NAME, EMAIL, TAX_ID, "555 0101"):
        assert secret not in stored, secret


async def test_one_subject_per_person_found_by_any_identifier(client, shop, db, settings):
    tenant, headers, outlet = shop
    a = (await client.post("/v1/invoices", json=sample_invoice(outlet["id"], buyer=PERSON), headers=headers)).json()
    # The same person by e-mail only, then by tax id in another spelling.
    b = (await client.post("/v1/invoices", json=sample_invoice(outlet["id"], buyer={"type": "PP", "email": EMAIL.upper()}),
                           headers=headers)).json()
    c = (await client.post("/v1/invoices", json=sample_invoice(outlet["id"], buyer={"type": "PP", "tax_id": "cd pp 99881"}),
                           headers=headers)).json()
    async with db.transaction() as s:
        await bind_tenant(s, tenant["id"])
        rows = dict((await s.execute(text("SELECT id, buyer_subject FROM invoices"))).all())
        found = await subjects.find_subject(s, settings, tenant["id"], email=EMAIL)
    assert rows[a["id"]] == rows[b["id"]] == rows[c["id"]] == found is not None


async def test_a_company_tax_id_stays_in_clear_and_an_anonymous_sale_has_no_subject(client, shop, db):
    tenant, headers, outlet = shop
    company = {"type": "PM", "name": "Mines du Kasai SA", "tax_id": "A1234567K"}
    inv = (await client.post("/v1/invoices", json=sample_invoice(outlet["id"], buyer=company), headers=headers)).json()
    assert inv["seal"]["payload"]["buyer_tax_id"] == "A1234567K" and inv["buyer"]["name"] == company["name"]
    anonymous = (await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)).json()
    assert anonymous["seal"]["payload"]["buyer_commitment"] is None and anonymous["buyer"] is None
    async with db.transaction() as s:
        await bind_tenant(s, tenant["id"])
        subject = (await s.execute(text("SELECT buyer_subject FROM invoices WHERE id = :i"),
                                   {"i": anonymous["id"]})).scalar_one()
    assert subject is None


async def test_restricted_then_shredded(client, shop, db, settings):
    tenant, headers, outlet = shop
    inv = (await client.post("/v1/invoices", json=sample_invoice(outlet["id"], buyer=PERSON), headers=headers)).json()
    async with db.transaction() as s:
        await bind_tenant(s, tenant["id"])
        subject_id = await subjects.find_subject(s, settings, tenant["id"], tax_id=TAX_ID)
        outcome, destroyed, pseudonyms = await subjects.erase(s, tenant["id"], subject_id,
                                                              retain_until=__import__("datetime").date(2037, 12, 31))
    assert outcome == "restricted" and destroyed == [] and len(pseudonyms) == 2
    shown = (await client.get(f"/v1/invoices/{inv['id']}", headers=headers)).json()
    assert shown["buyer"] is None and shown["buyer_status"] == "restricted"
    pdf = await client.get(f"/v1/invoices/{inv['id']}/pdf", headers=headers)
    assert pdf.status_code == 200 and NAME.encode() not in pdf.content
    page = (await client.get(f"/verify/{inv['id']}", headers={"Accept": "application/json"})).json()
    assert page["authentic"] is True and page["buyer"] is None
    # The tax obligation that kept it still reads it (the authority, an audit).
    from stalela.fiscal.invoices.service import render_many
    from stalela.fiscal.invoices.repository import InvoiceRepository
    async with db.transaction() as s:
        await bind_tenant(s, tenant["id"])
        row = await InvoiceRepository(s).get(inv["id"])
        [audit] = await render_many(s, settings, [row], purpose="audit")
        assert audit["buyer"]["name"] == NAME and audit["buyer_status"] == "restricted"
        assert await subjects.shred(s, tenant["id"], subject_id)
        assert await subjects.shred(s, tenant["id"], subject_id) == []  # idempotent
    async with db.transaction() as s:
        await bind_tenant(s, tenant["id"])
        row = await InvoiceRepository(s).get(inv["id"])
        [gone] = await render_many(s, settings, [row], purpose="audit")
    assert gone["buyer"] is None and gone["buyer_status"] == "erased"
    # The seal and the chain are untouched: the invoice verifies as before.
    again = (await client.get(f"/v1/invoices/{inv['id']}", headers=headers)).json()
    assert again["seal"] == inv["seal"]


async def test_an_erased_subject_stays_erased_unless_the_buyer_is_new(client, shop, db, settings):
    tenant, headers, outlet = shop
    await client.post("/v1/invoices", json=sample_invoice(outlet["id"], buyer=PERSON), headers=headers)
    async with db.transaction() as s:
        await bind_tenant(s, tenant["id"])
        subject_id = await subjects.find_subject(s, settings, tenant["id"], email=EMAIL)
        await subjects.erase(s, tenant["id"], subject_id, retain_until=None)
    r = await client.post("/v1/invoices", json=sample_invoice(outlet["id"], buyer={"type": "PP", "email": EMAIL}),
                          headers=headers)
    assert r.status_code == 409 and r.json()["code"] == "subject_erased" and r.json()["field"] == "buyer"
    # The refusal consumed no number.
    r = await client.post("/v1/invoices", json=sample_invoice(
        outlet["id"], buyer={"type": "PP", "email": EMAIL, "new_subject": True}), headers=headers)
    assert r.status_code == 201 and r.json()["counter"] == 2 and "new_subject" not in r.json()["buyer"]
    async with db.transaction() as s:
        await bind_tenant(s, tenant["id"])
        assert await subjects.find_subject(s, settings, tenant["id"], email=EMAIL) not in (None, subject_id)


async def test_last_seen_moves_by_the_day(client, shop, db, settings):
    """Retention runs from the buyer's last invoice, by date: a seal writes the subject only on a new day."""
    tenant, headers, outlet = shop
    await client.post("/v1/invoices", json=sample_invoice(outlet["id"], buyer=PERSON), headers=headers)
    async with db.transaction() as s:
        await bind_tenant(s, tenant["id"])
        subject_id = await subjects.find_subject(s, settings, tenant["id"], email=EMAIL)
        await s.execute(text("UPDATE privacy_subjects SET last_seen_at = :t WHERE id = :i"),
                        {"t": __import__("datetime").datetime(2026, 1, 2, 9, tzinfo=__import__("datetime").timezone.utc),
                         "i": subject_id})
    await client.post("/v1/invoices", json=sample_invoice(outlet["id"], buyer=PERSON), headers=headers)
    async with db.transaction() as s:
        await bind_tenant(s, tenant["id"])
        seen = (await s.execute(text("SELECT last_seen_at FROM privacy_subjects WHERE id = :i"),
                                {"i": subject_id})).scalar_one()
    seen = seen if not isinstance(seen, str) else __import__("datetime").datetime.fromisoformat(seen)
    assert seen.year == 2026 and (seen.month, seen.day) != (1, 2)
