"""The retention run on both databases: the preview is what the run then does; a row is marked, and purged
only by a run after the grace; runs are idempotent and audit-logged (counts, never values); a legal hold
stops a purge; a tenant's policy moves the cutoff; other tenants are untouched."""
from __future__ import annotations

import json
from datetime import timedelta

from prometheus_client import REGISTRY

from stalela.privacy import retention_service as service
from tests.privacy.support import DAY, PERSON, acted, counts, now, rows, seed

PREVIEW = "/v1/privacy/retention/preview"
HOLDS = "/v1/privacy/retention/holds"


async def _preview(client, headers, at):  # noqa: ANN001
    with service.use_clock(lambda: at):
        r = await client.get(PREVIEW, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def _purged_total(category: str) -> float:
    return REGISTRY.get_sample_value("privacy_retention_purged_total", {"category": category}) or 0.0


async def test_the_preview_is_what_the_run_then_does(app, client, new_tenant, settings):
    tenant, headers = await new_tenant()
    seeded = await seed(app.state.db, tenant["id"], now())
    before = await rows(app.state.db, tenant["id"])

    preview = await _preview(client, headers, seeded.at)
    assert acted(preview) == {name: {"mark": keys} for name, keys in seeded.due.items()}
    assert not preview["held"] and all(e["pending"]["count"] == 0 for e in preview["purgers"])
    assert {e["purger"]: (e["category"], e["days"]) for e in preview["purgers"]}["delivered_outbox_events"] == \
        ("operational", 30)

    run = await service.run_tenant(app.state.db, settings, tenant["id"], at=seeded.at)
    assert acted(run) == acted(preview) and counts(run) == counts(preview)
    after = await rows(app.state.db, tenant["id"])
    assert after == before | {"marks": sum(len(k) for k in seeded.due.values())}  # marked, nothing deleted

    # The next preview (a little later, before the grace ends) has nothing to do, and shows the marks standing.
    later = await _preview(client, headers, seeded.at + 6 * DAY)
    assert acted(later) == {}
    pending = {e["purger"]: e["pending"] for e in later["purgers"]}
    assert pending["expired_invitations"]["count"] == 1
    assert pending["expired_invitations"]["next_purge_after"].startswith(
        (seeded.at + 7 * DAY).strftime("%Y-%m-%dT%H:%M:%S"))

    # After the grace: the preview says it will purge exactly what was marked, and the run does.
    due_at = seeded.at + 7 * DAY
    preview = await _preview(client, headers, due_at)
    assert acted(preview) == {name: {"purge": keys} for name, keys in seeded.due.items()}
    metric = {c: _purged_total(c) for c in ("operational", "secret", "personal")}
    run = await service.run_tenant(app.state.db, settings, tenant["id"], at=due_at)
    assert acted(run) == acted(preview) and counts(run) == counts(preview)
    gone = {name: len(keys) for name, keys in seeded.due.items()} | seeded.along  # a draft's approval with it
    assert await rows(app.state.db, tenant["id"]) == {k: v - gone.get(k, 0) for k, v in before.items()} | {"marks": 0}
    # privacy_retention_purged_total{category}: 4 operational rows (event, record, message, attempt), 3 secret
    # (two refresh tokens, a ticket), 2 personal (the invitation, the draft).
    assert {c: _purged_total(c) - v for c, v in metric.items()} == {"operational": 4, "secret": 3, "personal": 2}


async def test_a_row_is_purged_only_by_a_run_after_its_grace_and_runs_are_idempotent(app, client, new_tenant,
                                                                                   settings):
    tenant, headers = await new_tenant()
    other, _ = await new_tenant("Other SARL", "B0000002C")
    seeded = await seed(app.state.db, tenant["id"], now())
    await seed(app.state.db, other["id"], seeded.at)
    before, other_before = await rows(app.state.db, tenant["id"]), await rows(app.state.db, other["id"])
    marked = sum(len(k) for k in seeded.due.values())

    first = await service.run_tenant(app.state.db, settings, tenant["id"], at=seeded.at)
    assert sum(c for (_, w), c in counts(first).items() if w == "mark") == marked
    again = await service.run_tenant(app.state.db, settings, tenant["id"], at=seeded.at)
    assert counts(again) == {}  # the second run at the same moment does nothing

    just_before = seeded.at + 7 * DAY - timedelta(seconds=1)
    assert counts(await service.run_tenant(app.state.db, settings, tenant["id"], at=just_before)) == {}
    assert await rows(app.state.db, tenant["id"]) == before | {"marks": marked}

    purged = await service.run_tenant(app.state.db, settings, tenant["id"], at=seeded.at + 7 * DAY)
    assert {k: c for k, c in counts(purged).items()} == {(n, "purge"): len(k) for n, k in seeded.due.items()}
    assert counts(await service.run_tenant(app.state.db, settings, tenant["id"], at=seeded.at + 7 * DAY)) == {}
    # The other tenant's rows, identical, were neither marked nor purged.
    assert await rows(app.state.db, other["id"]) == other_before

    # Audit: one entry per run that changed something, counts only, no personal value, the chain intact.
    log = (await client.get("/v1/audit-log", headers=headers)).json()["data"]
    runs = [e for e in log if e["action"] == "privacy.retention_run"]
    assert len(runs) == 2 and all(e["actor"] == "system:retention" for e in runs)
    assert runs[0]["details"]["counts"]["expired_invitations"] == {"marked": 0, "purged": 1, "unmarked": 0}
    assert runs[1]["details"]["counts"]["ended_refresh_tokens"] == {"marked": 2, "purged": 0, "unmarked": 0}
    assert runs[0]["details"]["counts"]["stale_invoice_drafts"] == {"marked": 0, "purged": 1, "unmarked": 0}
    text = json.dumps(runs)
    assert PERSON["name"] not in text and PERSON["email"] not in text and "idem-old" not in text
    assert seeded.due["stale_invoice_drafts"][0] not in text
    assert (await client.get("/v1/audit-log/verify", headers=headers)).json()["valid"] is True


async def test_a_legal_hold_stops_a_purge_and_its_release_gives_a_new_grace(app, client, new_tenant, settings):
    tenant, headers = await new_tenant()
    seeded = await seed(app.state.db, tenant["id"], now())
    marked = sum(len(k) for k in seeded.due.values())
    await service.run_tenant(app.state.db, settings, tenant["id"], at=seeded.at)

    hold = await client.post(HOLDS, json={"reason": "tax audit 2026"}, headers=headers)
    assert hold.status_code == 201, hold.text
    assert hold.json()["active"] and hold.json()["scope"] == {"outlet_id": None, "from": None, "to": None}
    due = seeded.at + 7 * DAY
    preview = await _preview(client, headers, due)
    assert preview["held"] is True
    # Nothing is purged or marked; every standing mark is dropped (the hold's rows get a new grace later).
    assert acted(preview) == {name: {"unmark": keys} for name, keys in seeded.due.items()}
    run = await service.run_tenant(app.state.db, settings, tenant["id"], at=due)
    assert counts(run) == counts(preview)
    assert (await rows(app.state.db, tenant["id"]))["marks"] == 0
    assert (await rows(app.state.db, tenant["id"]))["expired_invitations"] == 1

    released = await client.delete(f"{HOLDS}/{hold.json()['id']}", headers=headers)
    assert released.status_code == 200 and released.json()["active"] is False
    assert (await client.delete(f"{HOLDS}/{hold.json()['id']}", headers=headers)).json() == released.json()
    remark = await service.run_tenant(app.state.db, settings, tenant["id"], at=due)
    assert sum(c for (_, w), c in counts(remark).items() if w == "mark") == marked
    assert counts(await service.run_tenant(app.state.db, settings, tenant["id"], at=due + 7 * DAY - DAY)) == {}
    final = await service.run_tenant(app.state.db, settings, tenant["id"], at=due + 7 * DAY)
    assert sum(c for (_, w), c in counts(final).items() if w == "purge") == marked

    listed = (await client.get(HOLDS, headers=headers)).json()["data"]
    assert listed == []
    everything = (await client.get(f"{HOLDS}?include_released=true", headers=headers)).json()["data"]
    assert [h["id"] for h in everything] == [hold.json()["id"]]
    actions = [e["action"] for e in (await client.get("/v1/audit-log", headers=headers)).json()["data"]]
    assert "privacy.legal_hold_placed" in actions and "privacy.legal_hold_released" in actions


async def test_a_hold_on_a_date_range_covers_what_happened_on_those_days(app, client, new_tenant, settings):
    tenant, headers = await new_tenant()
    seeded = await seed(app.state.db, tenant["id"], now())
    # The webhook message and its attempt happened 45 days ago: a hold of that day holds both.
    day = seeded.dates["settled_webhook_messages"].date().isoformat()
    r = await client.post(HOLDS, json={"reason": "dispute", "scope": {"from": day, "to": day}}, headers=headers)
    assert r.status_code == 201, r.text
    preview = await _preview(client, headers, seeded.at)
    held = {"settled_webhook_messages", "webhook_attempts"}
    assert acted(preview) == {n: {"mark": k} for n, k in seeded.due.items() if n not in held}
    # An outlet's hold covers what names no outlet (none of these rows does, the draft included): everything.
    outlet = (await client.post("/v1/outlets", json={"code": "H1", "name": "Held"}, headers=headers)).json()
    r = await client.post(HOLDS, json={"reason": "outlet audit", "scope": {"outlet_id": outlet["id"]}}, headers=headers)
    assert r.status_code == 201, r.text
    assert acted(await _preview(client, headers, seeded.at)) == {}


async def test_a_policy_moves_the_cutoff_and_the_grace_of_its_category(app, client, new_tenant, settings):
    tenant, headers = await new_tenant()
    seeded = await seed(app.state.db, tenant["id"], now())
    await service.run_tenant(app.state.db, settings, tenant["id"], at=seeded.at)
    operational = ("delivered_outbox_events", "expired_idempotency_records", "webhook_attempts",
                   "settled_webhook_messages", "expired_device_nonces")

    r = await client.put("/v1/privacy/retention/policies/operational", json={"days": 60}, headers=headers)
    assert r.status_code == 200, r.text
    assert {x["purger"]: x["days"] for x in r.json()["rules"]} == {n: 60 for n in operational}
    # Lengthened: what was marked under 30 days is no longer past the rule, and loses its mark.
    preview = await _preview(client, headers, seeded.at + 7 * DAY)
    assert acted(preview) == {n: {"unmark" if n in operational else "purge": k} for n, k in seeded.due.items()}

    r = await client.put("/v1/privacy/retention/policies/secret", json={"grace_days": 1}, headers=headers)
    assert r.status_code == 200 and r.json()["grace_days"] == 1
    other, other_headers = await new_tenant("Grace SARL", "G0000001")
    assert (await client.put("/v1/privacy/retention/policies/secret", json={"grace_days": 1},
                             headers=other_headers)).status_code == 200
    fresh = await seed(app.state.db, other["id"], seeded.at)
    await service.run_tenant(app.state.db, settings, other["id"], at=fresh.at)
    soon = await service.run_tenant(app.state.db, settings, other["id"], at=fresh.at + DAY)
    assert {n for (n, w) in counts(soon) if w == "purge"} == {"ended_refresh_tokens", "expired_arca_tickets"}


async def test_cli_and_scheduler_paths_share_the_run(app, new_tenant, settings):
    """run_all over chosen tenants, dry or not, adds up what run_tenant does."""
    tenant, _ = await new_tenant()
    seeded = await seed(app.state.db, tenant["id"], now())
    dry = await service.run_all(app.state.db, settings, at=seeded.at, dry_run=True, tenant_ids=[tenant["id"]])
    total = sum(len(k) for k in seeded.due.values())
    assert dry["totals"] == {"marked": total, "purged": 0, "unmarked": 0} and dry["failed"] == []
    assert (await rows(app.state.db, tenant["id"]))["marks"] == 0
    done = await service.run_all(app.state.db, settings, at=seeded.at, tenant_ids=[tenant["id"]])
    assert done["totals"] == dry["totals"]
    assert json.loads(service.summary(done))["totals"] == done["totals"]


async def test_a_run_in_small_batches_does_the_same(app, client, new_tenant, settings):
    tenant, headers = await new_tenant()
    seeded = await seed(app.state.db, tenant["id"], now())
    small = settings.model_copy(update={"retention_batch_size": 1})  # a transaction per row
    preview = await _preview(client, headers, seeded.at)
    run = await service.run_tenant(app.state.db, small, tenant["id"], at=seeded.at)
    assert counts(run) == counts(preview) and acted(run) == acted(preview)
    due = seeded.at + 7 * DAY
    preview = await _preview(client, headers, due)
    run = await service.run_tenant(app.state.db, small, tenant["id"], at=due)
    assert counts(run) == counts(preview) == {(n, "purge"): len(k) for n, k in seeded.due.items()}
    assert (await rows(app.state.db, tenant["id"]))["marks"] == 0
