"""Tenant offboarding: a resumable state machine, one step per transaction.

``active → deprovisioning → exported → purged → deleted``. The outbox drives it: each step runs in
the transaction that also enqueues the next step's event, and starts by locking the offboarding row
and checking that the row stands exactly one step before it. So a step whose transaction committed
is never run again (a redelivered event finds the row past it and does nothing), and a step whose
worker died before committing left nothing behind and runs again from the start. Exactly one receipt
follows, however often the worker is killed.

The hand-over export is the tenant's audit export (``fiscal.reports.jobs``); the portability export
(``privacy.export_*``, scope tenant) replaces it through ``_request_export`` / ``_export_state``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.audit.service import record
from stalela.auth.service import API_KEYS
from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.errors import Conflict, NotFound
from stalela.fiscal.core import merkle
from stalela.fiscal.core.seal import build_seal, canonical_bytes
from stalela.fiscal.reports import jobs as audit_exports
from stalela.privacy import export_service as exports
from stalela.fiscal.signing import registry as signing
from stalela.fiscal.subjects import wrapping
from stalela.kit.clock import rfc3339
from stalela.kit.ids import new_id
from stalela.outbox.service import enqueue
from stalela.privacy.retention_rules import retain_until
from stalela.privacy.offboarding_models import Offboarding
from stalela.privacy.offboarding_repository import OffboardingRepository

TOPIC = "privacy.offboarding_step"
STATES = ("active", "deprovisioning", "exported", "purged", "deleted")
RECEIPT_FORMAT = "stalela-offboarding-receipt-v1"
# What stays, read-only, for the statutory period: the ledger and everything needed to verify it.
KEPT = ("invoices", "series", "z_reports", "report_day_figures", "merkle_logs", "merkle_nodes", "checkpoints",
        "signing_keys", "authority_acks", "invoice_sync", "audit_log", "outlets", "tenants",
        "privacy_subjects", "privacy_tenant_keys",
        # Offline sealing: the ledger's other records, and the credentials (their cnf keys verify offline invoices).
        "ledger_events", "number_blocks", "device_credentials", "devices", "offline_receipts", "fork_proofs",
        "block_returns")
# Statutory retention of invoices, years after the end of the financial (here: calendar) year.
# CD: OHADA AUDCIF art. 24 (10 years); AR: Código Civil y Comercial art. 328 (10 years). A local table
# until the retention engine's floors (privacy.retention_data) are on main; 10 years where unknown.


@dataclass
class Cleanup:
    """What a purge removes outside the database: done before its transaction commits (idempotent)."""

    redis_keys: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


@dataclass
class Outcome:
    advanced: bool  # False: the event was stale (the row is past this step) or must wait
    retry_after: float | None = None  # the export is not ready: run this step again later
    cleanup: Cleanup | None = None


def next_state(state: str) -> str | None:
    i = STATES.index(state)
    return STATES[i + 1] if i + 1 < len(STATES) else None


# --- the API -------------------------------------------------------------------------------------


async def start(session: AsyncSession, tenant_id: str, mode: str, actor: str) -> tuple[Offboarding, bool]:
    """(the offboarding, whether it was created now). Asking again with the same mode is answered
    with the running one; another mode is a conflict (the merchant was told one thing)."""
    repo = OffboardingRepository(session)
    tenant = await repo.tenant_for_update(tenant_id)
    if tenant is None:
        raise NotFound("no such tenant", code="tenant_not_found")
    existing = await repo.of_tenant(tenant_id)
    if existing is not None:
        if existing.mode != mode:
            raise Conflict(f"this tenant is already being offboarded with mode {existing.mode}",
                           code="offboarding_conflict", field="mode")
        return existing, False
    if tenant.status == "deleted":
        raise Conflict("tenant is deleted", code="tenant_status_conflict")
    row = await repo.add(Offboarding(tenant_id=tenant_id, id=new_id("off"), mode=mode, state="active",
                                     requested_by=actor, created_at=utcnow()))
    enqueue(session, tenant_id, TOPIC, {"offboarding_id": row.id, "step": "deprovisioning"})
    await record(session, tenant_id, actor, "tenant.offboarding_requested", row.id, {"mode": mode})
    return row, True


async def get(session: AsyncSession, tenant_id: str) -> Offboarding:
    row = await OffboardingRepository(session).of_tenant(tenant_id)
    if row is None:
        raise NotFound("this tenant is not being offboarded", code="offboarding_not_found")
    return row


async def all_offboardings(session: AsyncSession) -> list[dict[str, Any]]:
    """Every tenant's offboarding, unfinished first (platform-bound session: the operator console)."""
    return [render(row) for row in await OffboardingRepository(session).recent()]


def render(row: Offboarding) -> dict[str, Any]:
    return {
        "id": row.id, "tenant_id": row.tenant_id, "mode": row.mode, "state": row.state,
        "steps": {"requested_at": row.created_at, "deprovisioned_at": row.deprovisioned_at,
                  "exported_at": row.exported_at, "purged_at": row.purged_at, "deleted_at": row.deleted_at},
        "export_id": row.export_id, "export_sha256": row.export_sha256,
        "download_url": row.export_url if row.mode == "return" else None,
        "purged": json.loads(row.purged) if row.purged else None,
        "archive_key_destroy_after": row.archive_key_destroy_after,
        "receipt": json.loads(row.receipt) if row.receipt else None,
    }


# --- the steps -----------------------------------------------------------------------------------


async def advance(session: AsyncSession, settings: Settings, tenant_id: str, offboarding_id: str,
                  step: str) -> Outcome:
    """Run ``step`` if the row stands right before it; the caller's transaction checkpoints it."""
    repo = OffboardingRepository(session)
    row = await repo.lock(tenant_id, offboarding_id)
    if row is None or step not in STATES[1:] or next_state(row.state) != step:
        return Outcome(False)  # a redelivered event of a step already committed
    if step == "deprovisioning":
        await _deprovision(session, settings, row)
    elif step == "exported":
        waiting = await _export(session, settings, row)
        if waiting is not None:
            return Outcome(False, retry_after=waiting)
    elif step == "purged":
        cleanup = await _purge(session, settings, row)
        _then(session, row, step)
        return Outcome(True, cleanup=cleanup)
    else:
        await _delete(session, settings, row)
    _then(session, row, step)
    return Outcome(True)


def _then(session: AsyncSession, row: Offboarding, step: str) -> None:
    row.state = step
    following = next_state(step)
    if following is not None:
        enqueue(session, row.tenant_id, TOPIC, {"offboarding_id": row.id, "step": following})


async def _deprovision(session: AsyncSession, settings: Settings, row: Offboarding) -> None:
    tenant = await OffboardingRepository(session).tenant_for_update(row.tenant_id)
    tenant.status = "deprovisioning"  # auth.permissions.check_writable refuses every write from now on
    tenant.updated_at = utcnow()
    API_KEYS.clear()  # this process stops trusting cached "active" principals at once
    row.deprovisioned_at = utcnow()
    # Requested now, with the writes already refused: the export sees the tenant's final data.
    row.export_id = await _request_export(session, settings, row.tenant_id)
    await record(session, row.tenant_id, "operator", "tenant.deprovisioning", row.id, {"mode": row.mode})


async def _request_export(session: AsyncSession, settings: Settings, tenant_id: str) -> str:
    """The tenant's portability export (BagIt, signed, privacy/export_*): what is handed over."""
    return (await exports.request_tenant_export(session, settings, tenant_id, actor="offboarding")).id


async def _export_state(session: AsyncSession, settings: Settings, export_id: str
                        ) -> tuple[str, str | None, str | None]:
    export = await exports.get_export(session, export_id)
    return export.status, export.sha256, exports.render(settings, export).get("download_url")


async def _export(session: AsyncSession, settings: Settings, row: Offboarding) -> float | None:
    """None once the export is ready and recorded; else seconds to wait (backing off with the wait)."""
    status, digest, url = await _export_state(session, settings, row.export_id)
    if status == "ready":
        row.export_sha256, row.export_url, row.exported_at = digest, url, utcnow()
        await record(session, row.tenant_id, "operator", "tenant.export_handed_over", row.id,
                     {"export_id": row.export_id, "sha256": digest, "mode": row.mode})
        return None
    if status in ("failed", "revoked", "expired"):  # given up, or revoked by an erasure meanwhile: ask again
        row.export_id = await _request_export(session, settings, row.tenant_id)
    waited = (utcnow() - (row.deprovisioned_at or row.created_at)).total_seconds()
    return min(60.0, max(0.5, waited / 4))


async def _purge(session: AsyncSession, settings: Settings, row: Offboarding) -> Cleanup:
    repo = OffboardingRepository(session)
    tenant_id = row.tenant_id
    key_ids, user_ids, emails = await repo.credential_names(tenant_id)
    cleanup = Cleanup()
    # auth.throttle's names: token buckets per credential, failed-login counters per account.
    for name in [f"api_key:{k}" for k in key_ids] + [f"user:{u}" for u in user_ids]:
        cleanup.redis_keys += [f"stalela:tb:{name}", f"stalela:ts:{name}"]
    cleanup.redis_keys += [f"stalela:fail:login:acct:{e}" for e in emails]
    # mode delete keeps the hand-over export only until the receipt has its hash, i.e. not at all.
    keep = row.export_id if row.mode == "return" else None
    for job in await repo.other_exports(tenant_id, None):  # audit exports: operational copies
        cleanup.files.append(audit_exports.export_path(settings, job))
    counts = await repo.purge(tenant_id, None)
    revoked = await exports.revoke_live_exports(session, "operator", "offboarding", keep=keep)
    counts["privacy_exports_revoked"] = len(revoked)
    API_KEYS.clear()  # the purged keys stop working here at once, elsewhere within auth_cache_seconds
    if row.mode != "return":
        row.export_url = None
    last = await repo.last_invoice_at(tenant_id)
    tenant = await repo.tenant_for_update(tenant_id)
    row.archive_key_destroy_after = statutory_end(tenant.jurisdiction, last or row.created_at)
    row.archive_key_ids = json.dumps(await repo.schedule_tenant_keys(tenant_id, row.archive_key_destroy_after))
    row.purged = json.dumps(counts, sort_keys=True)
    row.purged_at = utcnow()
    await record(session, tenant_id, "operator", "tenant.purged", row.id,
                 {"purged": counts, "archive_key_destroy_after": row.archive_key_destroy_after.isoformat()})
    return cleanup


def statutory_end(jurisdiction: str, last_invoice_at: datetime) -> date:
    """The last invoice's retention end: the jurisdiction's floor from the end of its financial year (the
    tenant's own longer policies went with its account)."""
    until = retain_until(jurisdiction, last_invoice_at)
    assert until is not None  # no holds given
    return until


async def _delete(session: AsyncSession, settings: Settings, row: Offboarding) -> None:
    repo = OffboardingRepository(session)
    tenant = await repo.tenant_for_update(row.tenant_id)
    tenant.status = "deleted"
    tenant.updated_at = utcnow()
    row.deleted_at = utcnow()
    head = await repo.merkle_head(row.tenant_id)
    tree = merkle.CompactRange.from_bytes(head.frontier) if head and head.frontier else merkle.CompactRange()
    payload = {
        "format": RECEIPT_FORMAT, "offboarding_id": row.id, "tenant_id": row.tenant_id, "mode": row.mode,
        "export_sha256": row.export_sha256, "purged": json.loads(row.purged or "{}"), "kept": list(KEPT),
        "archive_key_destroy_after": row.archive_key_destroy_after.isoformat() if row.archive_key_destroy_after else None,
        "archive_key_ids": json.loads(row.archive_key_ids or "[]"),
        "merkle_tree_size": tree.size, "merkle_root": tree.root().hex(), "completed_at": rfc3339(row.deleted_at),
    }
    key = await signing.active_key(session, row.tenant_id)
    canonical = canonical_bytes(payload)
    receipt = build_seal(payload, await signing.sign(settings, key, canonical), key.id, canonical_payload=canonical)
    row.receipt = json.dumps(receipt, sort_keys=True)
    # No personal value: ids, counts and digests only.
    await record(session, row.tenant_id, "operator", "tenant.deleted", row.id,
                 {"receipt_hash": receipt["hash"], "mode": row.mode})


# --- archive keys past their statutory end --------------------------------------------------------


async def destroy_due_keys(session: AsyncSession, settings: Settings, today: date) -> list[str]:
    """On a platform-bound session: destroy every archive tenant key whose ``destroy_after`` passed."""
    repo = OffboardingRepository(session)
    destroyed = []
    for key in await repo.due_tenant_keys(today):
        wrapping.destroy_tenant_key(settings, key.backend, key.id)
        await repo.mark_destroyed(key)
        await record(session, key.tenant_id, "system", "privacy.tenant_key_destroyed", key.id,
                     {"destroy_after": key.destroy_after.isoformat()})
        destroyed.append(key.id)
    return destroyed
