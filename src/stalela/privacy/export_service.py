"""Portability exports (GDPR Art. 15 and 20): request, build, download by signed link, revoke, expire.

A request only writes the export's row and a ``privacy.export_requested`` outbox event, in the
request's transaction, and answers 202; the handler (``export_tasks``) builds the archive. Building is
idempotent: an export that is no longer pending is left alone, a rebuild writes the same bytes under
the same key (``export_bag``), and an export revoked while it was being built has its file deleted
by the builder. Files leave the store through ``privacy.export_purge`` events (revocation, expiry).
Services flush, never commit; only the builder and the sweep, which are workers, open transactions.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from stalela import __version__
from stalela.audit.service import record
from stalela.auth.principal import Principal
from stalela.auth.users import normalize_email
from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.db.session import Database
from stalela.errors import Conflict, NotFound, StalelaError, ValidationFailed
from stalela.fiscal.core.seal import b64url_encode
from stalela.fiscal.invoices import service as invoices
from stalela.fiscal.signing import registry as keys
from stalela.fiscal.subjects import service as subjects
from stalela.kit import canonical
from stalela.kit.ids import new_id
from stalela.kit.secretbox import open_secret, seal_secret
from stalela.observability.logging import get_logger
from stalela.observability.metrics import privacy_request
from stalela.outbox.service import enqueue
from stalela.privacy import export_clock, links
from stalela.privacy.export_archive import Snapshot, write_payload
from stalela.privacy.export_bag import Bag
from stalela.privacy.export_models import PrivacyExport
from stalela.privacy.export_repository import ExportRepository, SnapshotRepository
from stalela.privacy.export_schemas import FORMAT, FORMAT_VERSION, PrivacyExportCreate
from stalela.privacy.export_stream import store_archive
from stalela.storage.factory import store_for
from stalela.tenancy.context import bind_platform, bind_tenant

EXPORT_REQUESTED = "privacy.export_requested"
EXPORT_PURGE = "privacy.export_purge"
# How long a build holds its export without renewing (it renews every third of it while it runs).
BUILD_LEASE = timedelta(minutes=5)
LINK_ACTOR = "download_link"  # who downloads: whoever holds the link, named as such in the audit log
log = get_logger("stalela.privacy")


class ExportGone(StalelaError):
    status = 410
    code = "export_gone"
    title = "Export no longer available"


def storage_key(tenant_id: str, export_id: str) -> str:
    return f"{tenant_id}/exports/{export_id}.tar.gz"


def _subject_context(tenant_id: str, export_id: str) -> str:
    return f"privacy-export-subject:{tenant_id}:{export_id}"


# --- the API's use cases -------------------------------------------------------------------------


async def request_export(session: AsyncSession, settings: Settings, principal: Principal, body: PrivacyExportCreate,
                         ip: str | None = None) -> PrivacyExport:
    tenant_id = principal.tenant_id
    subject = body.subject.model_dump(exclude_none=True) if body.subject else {}
    if body.scope == "subject" and not subject:
        raise ValidationFailed("a subject export names its subject (email, tax_id or reference)",
                               code="subject_required", field="subject")
    if body.scope == "tenant" and body.subject is not None:
        raise ValidationFailed("a tenant export is about the whole tenant: give no subject",
                               code="subject_not_allowed", field="subject")
    if await ExportRepository(session).count_pending() >= settings.export_max_pending:
        raise Conflict(f"{settings.export_max_pending} exports are already being built; wait for them",
                       code="export_limit_reached")
    return await _create(session, settings, tenant_id, body.scope, subject, body.pdfs, principal.actor, ip)


async def request_tenant_export(session: AsyncSession, settings: Settings, tenant_id: str, actor: str
                                ) -> PrivacyExport:
    """The whole tenant's export asked by the platform itself (offboarding's hand-over): no pending limit."""
    return await _create(session, settings, tenant_id, "tenant", {}, True, actor, None)


async def _create(session: AsyncSession, settings: Settings, tenant_id: str, scope: str, subject: dict[str, str],
                  pdfs: bool, actor: str, ip: str | None) -> PrivacyExport:
    repo = ExportRepository(session)
    now = export_clock.now()
    export_id = new_id("pex")
    if "email" in subject:
        subject["email"] = normalize_email(subject["email"])
    export = PrivacyExport(
        tenant_id=tenant_id, id=export_id, scope=scope, status="pending", requested_by=actor,
        subject_encrypted=seal_secret(settings, json.dumps(subject), _subject_context(tenant_id, export_id))
        if subject else None,
        leaf_bound=await SnapshotRepository(session).log_size(), audit_seq_bound=0, created_at=now, pdfs=pdfs)
    await repo.add(export)
    # The log's own entry closes the snapshot: the archive holds every entry before it.
    entry = await record(session, tenant_id, actor, "privacy_export.requested", export_id,
                         {"scope": scope, "subject_identifiers": sorted(subject)}, ip=ip)
    export.audit_seq_bound = entry.seq
    enqueue(session, tenant_id, EXPORT_REQUESTED, {"export_id": export_id})
    await session.flush()
    privacy_request(session, "export", "requested")
    return export


async def get_export(session: AsyncSession, export_id: str) -> PrivacyExport:
    export = await ExportRepository(session).get(export_id)
    if export is None:
        raise NotFound("no such export", code="export_not_found")
    return export


async def list_exports(session: AsyncSession, *, limit: int, starting_after: str | None):
    return await ExportRepository(session).page(None, limit=limit, starting_after=starting_after)


async def revoke_export(session: AsyncSession, principal: Principal, export_id: str,
                        ip: str | None = None) -> PrivacyExport:
    """Its link stops working at once and its file is deleted (``privacy.export_purge``). Idempotent."""
    export = await ExportRepository(session).get_locked(export_id)
    if export is None:
        raise NotFound("no such export", code="export_not_found")
    if export.status == "revoked":
        return export
    if export.status not in ("pending", "ready"):
        raise Conflict(f"the export is {export.status}: there is nothing to revoke", code="export_not_revocable",
                       extra={"export_status": export.status})
    export.status, export.ended_at, export.subject_encrypted = "revoked", export_clock.now(), None
    enqueue(session, export.tenant_id, EXPORT_PURGE, {"export_id": export.id})
    await session.flush()
    await record(session, export.tenant_id, principal.actor, "privacy_export.revoked", export.id, ip=ip)
    privacy_request(session, "export", "revoked")
    return export


async def revoke_live_exports(session: AsyncSession, actor: str, reason: str, *, keep: str | None = None) -> list[str]:
    """Revoke every export of the session's tenant that is pending or ready (their files are then purged):
    for an erasure, whose subject is in every tenant export made before it, or an offboarding. Returns
    their ids."""
    repo = ExportRepository(session)
    revoked = []
    for export_id in await repo.live_ids():
        if export_id == keep:
            continue
        export = await repo.get_locked(export_id)
        if export is None or export.status not in ("pending", "ready"):
            continue
        export.status, export.ended_at, export.subject_encrypted = "revoked", export_clock.now(), None
        enqueue(session, export.tenant_id, EXPORT_PURGE, {"export_id": export.id})
        await session.flush()
        await record(session, export.tenant_id, actor, "privacy_export.revoked", export.id, {"reason": reason})
        privacy_request(session, "export", "revoked")
        revoked.append(export.id)
    return revoked


def _live(export: PrivacyExport, now: datetime) -> bool:
    return export.status == "ready" and export.expires_at is not None and now < export.expires_at


def render(settings: Settings, export: PrivacyExport) -> dict[str, Any]:
    now = export_clock.now()
    url = None
    if _live(export, now):
        token = links.issue(settings, export.tenant_id, export.id)
        url = f"{settings.effective_public_url}/v1/privacy/exports/{export.id}/download?token={token}"
    return {
        "id": export.id, "object": "privacy_export", "scope": export.scope, "status": export.status,
        "created_at": export.created_at, "completed_at": export.completed_at, "expires_at": export.expires_at,
        "download_url": url, "sha256": export.sha256, "size": export.size, "key_id": export.key_id,
        "counts": json.loads(export.counts) if export.counts else None, "error": export.error,
    }


async def authorize_download(session: AsyncSession, settings: Settings, export_id: str, token: str | None,
                             ip: str | None = None) -> PrivacyExport:
    """The export a genuine, live link opens (and the download in the audit log), or why not.

    Refusals: a token that is not ours, or for another export, 403 ``export_link_invalid``; revoked, 410
    ``export_revoked``; past its lifetime, 410 ``export_link_expired``; not built yet, 409."""
    claims = links.read(settings, token)
    if claims.export_id != export_id:
        raise links.LinkInvalid("this link is for another export")
    await bind_tenant(session, claims.tenant_id)  # the link names its tenant: no platform read needed
    export = await ExportRepository(session).get(export_id)
    if export is None:
        raise NotFound("no such export", code="export_not_found")
    if export.status == "revoked":
        raise ExportGone("the export was revoked", code="export_revoked")
    past = export.status == "ready" and not _live(export, export_clock.now())
    if claims.expired or export.status == "expired" or past:
        raise ExportGone("the download link has expired; request a new export", code="export_link_expired")
    if export.status != "ready":
        raise Conflict(f"the export is {export.status}", code="export_not_ready",
                       extra={"export_status": export.status})
    await record(session, export.tenant_id, LINK_ACTOR, "privacy_export.downloaded", export.id, ip=ip)
    privacy_request(session, "export", "downloaded")
    return export


# --- the worker's side ---------------------------------------------------------------------------


async def _subject_invoice_ids(session: AsyncSession, settings: Settings, tenant_id: str,
                               subject: dict[str, str]) -> list[str]:
    """The invoices of the subject named by these identifiers (none if they name nobody)."""
    subject_id = await subjects.find_subject(session, settings, tenant_id, email=subject.get("email"),
                                             tax_id=subject.get("tax_id"), reference=subject.get("reference"))
    if subject_id is None:
        return []
    found: list[str] = []
    for sid in sorted(await subjects.with_merged(session, {subject_id})):  # one person, however first known
        found += await invoices.subject_invoice_ids(session, sid)
    return sorted(set(found))


async def _subject_snapshot(session: AsyncSession, settings: Settings,
                            export: PrivacyExport) -> tuple[list[str], str | None]:
    """The subject's invoice ids, and their e-mail (a subject may also be a user of the tenant)."""
    subject: dict[str, str] = {}
    if export.subject_encrypted:
        context = _subject_context(export.tenant_id, export.id)
        subject = json.loads(open_secret(settings, export.subject_encrypted, context))
    return await _subject_invoice_ids(session, settings, export.tenant_id, subject), subject.get("email")


def _bag_info(export: PrivacyExport, tenant_name: str, key_id: str) -> list[tuple[str, str]]:
    day = export.created_at.astimezone(timezone.utc).date().isoformat()
    what = "the tenant" if export.scope == "tenant" else "one data subject of the tenant"
    return [
        ("Source-Organization", tenant_name),
        ("Bagging-Date", day),
        ("External-Description", f"Portability export (GDPR Art. 15 and 20) of the data Stalela holds for {what}"),
        ("Bag-Software-Agent", f"Stalela {__version__}"),
        ("Stalela-Export-Format", f"{FORMAT}/{FORMAT_VERSION}"),
        ("Stalela-Export-Scope", export.scope),
        ("Stalela-Tenant-Id", export.tenant_id),
        ("Stalela-Signing-Key", key_id),
    ]


def detached_jws_header(key_id: str) -> str:
    return b64url_encode(canonical.dumps({"alg": "ES256", "kid": key_id}))


async def _signature(db: Database, settings: Settings, export: PrivacyExport, key: Any, tagmanifest: bytes) -> str:
    """A detached JWS (RFC 7515 appendix F) over the tag manifest; the one made for the same manifest in an
    earlier build of this export when there is one, so that a rebuild gives the same archive."""
    digest = hashlib.sha256(tagmanifest).hexdigest()
    async with db.transaction() as session:
        await bind_tenant(session, export.tenant_id)
        repo = ExportRepository(session)
        # Read again, locked: another build of this export may have signed the same manifest meanwhile.
        current = await repo.get_locked(export.id)
        if current is not None and current.signature and current.tagmanifest_sha256 == digest \
                and current.key_id == key.id:
            return current.signature
        header = detached_jws_header(key.id)
        signature = await keys.sign(settings, key, f"{header}.{b64url_encode(tagmanifest)}".encode())
        jws = f"{header}..{b64url_encode(signature)}"
        # Kept before the file is written: a build that dies after this reuses it.
        await repo.keep_signature(export.id, digest, jws, key.id)
    return jws


class BuildInProgress(Exception):
    """Another worker is building this export (until ``until``, unless it renews its claim)."""

    def __init__(self, until: datetime | None) -> None:
        super().__init__(f"the export is being built elsewhere (claimed until {until})")
        self.until = until


async def _claim_build(db: Database, tenant_id: str, export_id: str) -> PrivacyExport | None:
    """The pending export, now held for this build; None if there is nothing to build."""
    async with db.transaction() as session:
        await bind_tenant(session, tenant_id)
        repo = ExportRepository(session)
        export = await repo.get(export_id)
        if export is None or export.status != "pending":
            return None
        now = utcnow()
        if not await repo.claim_build(export_id, now, now + BUILD_LEASE):
            raise BuildInProgress(export.build_claimed_until)
        return export


async def _keep_claim(db: Database, tenant_id: str, export_id: str) -> None:
    while True:
        await asyncio.sleep(BUILD_LEASE.total_seconds() / 3)
        try:
            async with db.transaction() as session:
                await bind_tenant(session, tenant_id)
                await ExportRepository(session).renew_build(export_id, utcnow() + BUILD_LEASE)
        except Exception:  # the database away for a moment: the next round tries again
            log.warning("privacy_export_claim_not_renewed", tenant_id=tenant_id, export_id=export_id)


async def build_export(db: Database, settings: Settings, tenant_id: str, export_id: str) -> str:
    """Build a pending export's archive into the document store; returns the export's status after.
    ``BuildInProgress`` if another worker is building it right now."""
    export = await _claim_build(db, tenant_id, export_id)
    if export is None:
        async with db.transaction(readonly=True) as session:
            await bind_tenant(session, tenant_id)
            found = await ExportRepository(session).get(export_id)
        return found.status if found is not None else "missing"
    renewer = asyncio.create_task(_keep_claim(db, tenant_id, export_id), name=f"claim-{export_id}")
    try:
        return await _build(db, settings, export)
    except Exception:
        # Let the retry (or another worker) build it at once instead of waiting out the claim.
        with contextlib.suppress(Exception):
            async with db.transaction() as session:
                await bind_tenant(session, tenant_id)
                await ExportRepository(session).renew_build(export_id, None)
        raise
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer


async def _build(db: Database, settings: Settings, export: PrivacyExport) -> str:
    tenant_id, export_id = export.tenant_id, export.id
    async with db.transaction(readonly=True) as session:
        await bind_tenant(session, tenant_id)
        invoice_ids, email = (await _subject_snapshot(session, settings, export)) if export.scope == "subject" \
            else (None, None)
        key = await keys.active_key(session, tenant_id)
        tenant_name = (await SnapshotRepository(session).tenant(tenant_id)).name
    snap = Snapshot(tenant_id, export.scope, export.leaf_bound, export.audit_seq_bound, export.created_at,
                    invoice_ids, email, export.pdfs)
    day = export.created_at.astimezone(timezone.utc).date()
    base = f"stalela-{'tenant' if export.scope == 'tenant' else 'subject'}-export-{tenant_id}-{day.isoformat()}"
    mtime = int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp())
    key_name = storage_key(tenant_id, export_id)
    store = store_for(settings)
    with tempfile.TemporaryDirectory(prefix="stalela-privacy-export-") as tmp:
        bag = Bag(Path(tmp) / "bag")
        try:
            async with db.transaction(readonly=True) as session:
                await bind_tenant(session, tenant_id)
                counts = await write_payload(session, settings, snap, bag)
            tagmanifest = await anyio.to_thread.run_sync(bag.finish, _bag_info(export, tenant_name, key.id))
            bag.sign((await _signature(db, settings, export, key, tagmanifest)).encode())
            stored = await store_archive(store, key_name, bag, base, mtime)
        finally:
            bag.close_all()
    now = export_clock.now()
    async with db.transaction() as session:
        await bind_tenant(session, tenant_id)
        ready = await ExportRepository(session).move(
            export_id, "pending", status="ready", storage_key=key_name, sha256=stored.sha256, size=stored.size,
            counts=json.dumps(counts, sort_keys=True), completed_at=now,
            expires_at=now + timedelta(hours=settings.export_link_hours), subject_encrypted=None, error=None,
            build_claimed_until=None)
        if ready:
            await record(session, tenant_id, "system", "privacy_export.ready", export_id,
                         {"sha256": stored.sha256, "size": stored.size, "counts": counts})
            privacy_request(session, "export", "completed")
        else:
            status = (await ExportRepository(session).get(export_id)).status
    if not ready:
        if status in ("revoked", "expired"):  # revoked while it was built: the file must not outlive that
            await store.delete(key_name)
        return status  # or "ready": another build finished first, with the same bytes
    log.info("privacy_export_ready", tenant_id=tenant_id, export_id=export_id, size=stored.size)
    return "ready"


async def fail_export(db: Database, tenant_id: str, export_id: str, error: str) -> None:
    async with db.transaction() as session:
        await bind_tenant(session, tenant_id)
        if await ExportRepository(session).move(export_id, "pending", status="failed", error=error[:500],
                                                ended_at=export_clock.now(), subject_encrypted=None,
                                                build_claimed_until=None):
            await record(session, tenant_id, "system", "privacy_export.failed", export_id, {"error": error[:200]})
            privacy_request(session, "export", "failed")


async def purge_file(db: Database, settings: Settings, tenant_id: str, export_id: str) -> None:
    """Delete a revoked or expired export's file (idempotent: a file already gone is fine)."""
    async with db.transaction(readonly=True) as session:
        await bind_tenant(session, tenant_id)
        export = await ExportRepository(session).get(export_id)
    if export is not None and export.status in ("revoked", "expired"):
        await store_for(settings).delete(storage_key(tenant_id, export_id))


async def expire_due(db: Database, settings: Settings) -> int:
    """Expire every ready export past its link's lifetime; their files are then purged. Returns how many."""
    now = export_clock.now()
    async with db.transaction(readonly=True) as session:
        await bind_platform(session)
        due = await ExportRepository(session).due_to_expire(now)
    expired = 0
    for tenant_id, export_id in due:
        async with db.transaction() as session:
            await bind_tenant(session, tenant_id)
            if await ExportRepository(session).move(export_id, "ready", status="expired", ended_at=now):
                enqueue(session, tenant_id, EXPORT_PURGE, {"export_id": export_id})
                await record(session, tenant_id, "system", "privacy_export.expired", export_id)
                privacy_request(session, "export", "expired")
                expired += 1
    return expired
