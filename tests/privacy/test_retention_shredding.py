"""At the end of retention a buyer's key is destroyed by the retention run: restricted subjects at their
retain_until, active ones once their last invoice left retention; a legal hold suspends it. SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import text

from stalela.fiscal.subjects import service as subjects
from stalela.privacy import retention_service as service
from stalela.privacy.retention_shredding import last_seen_before
from stalela.tenancy.context import bind_tenant
from tests.support.invoices import sample_invoice

UTC = timezone.utc


def test_the_cutoff_is_the_start_of_the_oldest_financial_year_still_kept():
    # CD: 10 years from the end of the calendar year. On 2037-01-01, invoices of 2026 are past (kept to 2036-12-31).
    assert last_seen_before("CD", None, date(2037, 1, 1)) == datetime(2027, 1, 1, tzinfo=UTC)
    assert last_seen_before("CD", None, date(2036, 12, 31)) == datetime(2026, 1, 1, tzinfo=UTC)
    assert last_seen_before("AR", None, date(2040, 6, 1)) == datetime(2030, 1, 1, tzinfo=UTC)


async def test_the_run_shreds_subjects_past_retention_and_a_hold_stops_it(app, client, new_tenant, settings):
    tenant, headers = await new_tenant("Ancien SARL", "A7654321Z")
    outlet = (await client.post("/v1/outlets", json={"code": "S1", "name": "Shop"}, headers=headers)).json()
    old = (await client.post("/v1/invoices", json=sample_invoice(
        outlet["id"], buyer={"type": "PP", "name": "Old Customer", "email": "old@example.cd"}), headers=headers)).json()
    kept = (await client.post("/v1/invoices", json=sample_invoice(
        outlet["id"], buyer={"type": "PP", "name": "Recent Customer", "email": "new@example.cd"}), headers=headers)).json()
    db = app.state.db
    async with db.transaction() as s:
        await bind_tenant(s, tenant["id"])
        old_id = await subjects.find_subject(s, settings, tenant["id"], email="old@example.cd")
        kept_id = await subjects.find_subject(s, settings, tenant["id"], email="new@example.cd")
        # As if its only invoice was sealed in 2015 (kept to 2025-12-31).
        await s.execute(text("UPDATE privacy_subjects SET last_seen_at = :t WHERE id = :i"),
                        {"t": datetime(2015, 6, 1, tzinfo=UTC), "i": old_id})
    at = datetime(2026, 12, 6, 12, tzinfo=UTC)
    hold = (await client.post("/v1/privacy/retention/holds", json={"reason": "tax audit"}, headers=headers)).json()
    preview = await service.run_tenant(db, settings, tenant["id"], at=at, dry_run=True)
    assert preview["shred"] == {"count": 0, "sample": [], "held": True, "last_seen_before": None}
    await service.run_tenant(db, settings, tenant["id"], at=at)
    assert (await client.get(f"/v1/invoices/{old['id']}", headers=headers)).json()["buyer"]["name"] == "Old Customer"
    await client.delete(f"/v1/privacy/retention/holds/{hold['id']}", headers=headers)

    preview = (await client.get("/v1/privacy/retention/preview", headers=headers)).json()
    assert preview["shred"]["count"] == 1 and preview["shred"]["sample"] == [old_id]
    run = await service.run_tenant(db, settings, tenant["id"], at=at)
    assert run["shred"]["count"] == 1
    gone = (await client.get(f"/v1/invoices/{old['id']}", headers=headers)).json()
    assert gone["buyer"] is None and gone["buyer_status"] == "erased" and gone["seal"] == old["seal"]
    assert (await client.get(f"/v1/invoices/{kept['id']}", headers=headers)).json()["buyer"]["name"] == "Recent Customer"
    # Idempotent; and the run was audit-logged with counts only.
    assert (await service.run_tenant(db, settings, tenant["id"], at=at))["shred"]["count"] == 0
    log = (await client.get("/v1/audit-log", headers=headers)).json()["data"]
    entry = next(e for e in log if e["action"] == "privacy.retention_run")
    assert entry["details"]["counts"]["subject_keys"] == {"shredded": 1} and "Old Customer" not in str(entry)

    # A restricted subject goes at its retain_until, not before.
    async with db.transaction() as s:
        await bind_tenant(s, tenant["id"])
        await subjects.erase(s, tenant["id"], kept_id, retain_until=date(2036, 12, 31), now=at)
    assert (await service.run_tenant(db, settings, tenant["id"], at=at, dry_run=True))["shred"]["count"] == 0
    later = datetime(2037, 1, 1, 1, tzinfo=UTC)
    assert (await service.run_tenant(db, settings, tenant["id"], at=later))["shred"]["count"] == 1
