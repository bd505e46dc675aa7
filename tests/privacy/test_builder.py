"""The archive builder's other paths: pages of one row, a subject's share, failures, and S3 as the store."""
from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import bagit
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from stalela.db.base import utcnow
from stalela.outbox.models import OutboxEvent
from stalela.privacy import export_service

from stalela.privacy.export_archive import Snapshot, write_payload
from stalela.privacy.export_bag import Bag
from stalela.privacy.export_clock import now
from stalela.privacy.export_repository import SnapshotRepository
from stalela.tenancy.context import bind_tenant
from tests.privacy.conftest import extract, open_world


async def test_pages_of_one_row_give_the_same_archive_content(fresh_database_url, tmp_path, clock):
    async with open_world(fresh_database_url, tmp_path, export_page_size=1) as world:
        export = await world.ready_export()
        assert export["counts"]["invoices"] == 3 and export["counts"]["outlets"] == 2
        bag_dir = extract((await world.download(export)).content, tmp_path / "x")
        bagit.Bag(str(bag_dir)).validate()
        ids = [json.loads(line)["id"] for line in (bag_dir / "data" / "invoices.ndjson").read_text().splitlines()]
        assert ids == sorted(i["id"] for i in world.invoices)  # by id, one page after the other
        seqs = [json.loads(line)["seq"] for line in (bag_dir / "data" / "audit_events.ndjson").read_text().splitlines()]
        assert seqs == list(range(1, len(seqs) + 1))  # the whole chain below the request's own entry
        assert sorted(p.name for p in (bag_dir / "data" / "pdf").iterdir()) == sorted(f"{i}.pdf" for i in ids)


async def test_a_subjects_share_of_the_data(world, tmp_path):
    """What a subject export holds once the subjects index names the subject's invoices (issue 16)."""
    invoice = world.invoices[1]
    users = (await world.api("GET", "/v1/users")).json()["data"]
    (marie,) = [u for u in users if u["email"] == "marie@example.cd"]
    async with world.db.transaction(readonly=True) as session:
        await bind_tenant(session, world.tenant_id)
        repo = SnapshotRepository(session)
        snap = Snapshot(world.tenant_id, "subject", await repo.log_size(), 10**9, now(),
                        invoice_ids=[invoice["id"], "inv_not_theirs_or_anyones"], email="marie@example.cd")
        bag = Bag(tmp_path / "bag")
        try:
            counts = await write_payload(session, world.settings, snap, bag)
        finally:
            bag.close_all()
    assert counts == {"tenant": 1, "users": 1, "invoices": 1, "audit_events": counts["audit_events"], "pdf": 1}
    data = tmp_path / "bag" / "data"
    assert sorted(p.name for p in data.iterdir()) == sorted(
        ["audit_events.csv", "audit_events.ndjson", "invoices.csv", "invoices.ndjson", "pdf", "schemas",
         "tenant.csv", "tenant.ndjson", "users.csv", "users.ndjson"])
    assert [json.loads(x)["id"] for x in (data / "invoices.ndjson").read_text().splitlines()] == [invoice["id"]]
    assert [json.loads(x)["id"] for x in (data / "users.ndjson").read_text().splitlines()] == [marie["id"]]
    events = [json.loads(x) for x in (data / "audit_events.ndjson").read_text().splitlines()]
    assert events and all(e["target"] in (invoice["id"], marie["id"]) or e["actor"] == f"user:{marie['id']}"
                          for e in events)
    assert any(e["target"] == marie["id"] for e in events)  # the user's creation, say


async def test_a_build_that_keeps_failing_is_recorded_as_failed(fresh_database_url, tmp_path, clock, s3_server):
    # A store that answers, but without the bucket: every build fails the same way.
    overrides = s3_server.settings_overrides("no-such-bucket")
    async with open_world(fresh_database_url, tmp_path, export_max_attempts=2, **overrides) as world:
        before = REGISTRY.get_sample_value("privacy_requests_total", {"type": "export", "outcome": "failed"}) or 0
        export = await world.request_export()
        failed = await world.until(export["id"], "failed")
        assert failed["status"] == "failed" and "NoSuchBucket" in failed["error"], failed
        assert failed["download_url"] is None
        assert REGISTRY.get_sample_value("privacy_requests_total", {"type": "export", "outcome": "failed"}) == before + 1
        log = (await world.api("GET", "/v1/audit-log")).json()["data"]
        assert [e["action"] for e in log if e["target"] == export["id"]] == ["privacy_export.failed",
                                                                            "privacy_export.requested"]
        await world.request_export()  # a failed export no longer counts against the limit


async def test_exports_live_in_an_s3_store_too(fresh_database_url, tmp_path, clock, s3_server):
    bucket = s3_server.new_bucket()
    async with open_world(fresh_database_url, tmp_path, **s3_server.settings_overrides(bucket, "stalela")) as world:
        export = await world.ready_export()
        key = f"stalela/{world.tenant_id}/exports/{export['id']}.tar.gz"
        listed = s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]
        assert [(o["Key"], o["Size"]) for o in listed] == [(key, export["size"])]
        r = await world.download(export)
        assert r.status_code == 200 and len(r.content) == export["size"]
        bagit.Bag(str(extract(r.content, tmp_path / "x"))).validate()
        assert (await world.api("DELETE", f"/v1/privacy/exports/{export['id']}")).status_code == 200
        await world.pump()
        assert s3_server.client().list_objects_v2(Bucket=bucket).get("Contents", []) == []


async def test_a_second_worker_waits_for_the_build_in_progress_and_never_undoes_it(world):
    """The outbox lease of a long build can run out and hand its event to another worker: that one waits
    for the first build's claim instead of building at once, and a build that finishes second leaves the
    first one's file alone (the same bytes anyway)."""
    export = await world.request_export()
    held = await export_service._claim_build(world.db, world.tenant_id, export["id"])  # a first worker
    assert held is not None
    with pytest.raises(export_service.BuildInProgress):
        await export_service.build_export(world.db, world.settings, world.tenant_id, export["id"])
    await world.pump()  # the handler answers "retry later", without spending an attempt
    async with world.db.transaction(readonly=True) as session:
        await bind_tenant(session, world.tenant_id)
        (event,) = [e for e in (await session.execute(select(OutboxEvent))).scalars()
                    if e.topic == export_service.EXPORT_REQUESTED]
    # Looked at again once the first worker's claim would have lapsed (it renews it while it builds).
    assert event.status == "pending" and event.attempts == 0
    assert event.available_at > utcnow() + export_service.BUILD_LEASE - timedelta(minutes=1)
    assert (await world.api("GET", f"/v1/privacy/exports/{export['id']}")).json()["status"] == "pending"

    assert await export_service._build(world.db, world.settings, held) == "ready"  # the first worker ends
    ready = (await world.api("GET", f"/v1/privacy/exports/{export['id']}")).json()
    # A late build of the same export (it had read it while pending) writes the same bytes and keeps them.
    assert await export_service._build(world.db, world.settings, held) == "ready"
    assert (await world.download(ready)).content == (await world.download(ready)).content
    assert hashlib.sha256((await world.download(ready)).content).hexdigest() == ready["sha256"]
