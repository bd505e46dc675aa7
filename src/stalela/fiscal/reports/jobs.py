"""Audit export jobs: requested over the API, built in the background by any process, downloaded.

Claiming is a conditional UPDATE (status and claim time as observed), so any number of processes
can run the runner side by side and each job is built by one of them; a job whose builder died is
claimed again after ``LEASE``. Files live under ``$STALELA_DATA_DIR/exports`` (shared storage when
several hosts serve the API).
"""
from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.audit.service import record
from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.db.session import Database
from stalela.errors import Conflict, NotFound, ValidationFailed
from stalela.fiscal.reports.export import sha256_file, write_export
from stalela.fiscal.ledger.models import ExportJob
from stalela.fiscal.ledger.service import checkpoint_if_grown
from stalela.kit.clock import rfc3339
from stalela.kit.ids import new_id
from stalela.observability.logging import get_logger
from stalela.outbox.service import enqueue
from stalela.tenancy.context import bind_platform, bind_tenant

LEASE = timedelta(minutes=30)
MAX_ATTEMPTS = 3
log = get_logger("stalela.exports")


def _midnight(day: date | None) -> datetime | None:
    return datetime.combine(day, time.min, tzinfo=timezone.utc) if day else None


def export_path(settings: Settings, job: ExportJob) -> Path:
    return Path(settings.data_dir).resolve() / "exports" / job.tenant_id / f"{job.id}.tar.gz"


async def request_export(session: AsyncSession, tenant_id: str, day_from: date | None, day_to: date | None,
                         actor: str = "system") -> ExportJob:
    if day_from and day_to and day_from >= day_to:
        raise ValidationFailed("'to' must be after 'from'", code="invalid_range", field="to")
    job = ExportJob(tenant_id=tenant_id, id=new_id("exp"), status="pending", date_from=_midnight(day_from),
                    date_to=_midnight(day_to), attempts=0, created_at=utcnow())
    session.add(job)
    enqueue(session, tenant_id, "export.requested", {"export_id": job.id})
    await session.flush()
    await record(session, tenant_id, actor, "export.requested", job.id,
                 {"from": day_from.isoformat() if day_from else None, "to": day_to.isoformat() if day_to else None})
    return job


async def get_export(session: AsyncSession, export_id: str) -> ExportJob:
    job = (await session.execute(select(ExportJob).where(ExportJob.id == export_id))).scalar_one_or_none()
    if job is None:
        raise NotFound("no such export", code="export_not_found")
    return job


async def discard_ready(session: AsyncSession, settings: Settings, reason: str) -> list[str]:
    """Delete the files of the session's tenant's ready audit exports (they name buyers in clear) and mark
    them failed with ``reason``: after an erasure, no copy of the erased data may stay downloadable."""
    rows = (await session.execute(select(ExportJob).where(ExportJob.status == "ready"))).scalars().all()
    for job in rows:
        export_path(settings, job).unlink(missing_ok=True)
        job.status, job.error = "failed", reason
    await session.flush()
    return [job.id for job in rows]


def ready_file(settings: Settings, job: ExportJob) -> Path:
    if job.status != "ready":
        raise Conflict(f"the export is {job.status}", code="export_not_ready", extra={"export_status": job.status})
    path = export_path(settings, job)
    if not path.exists():
        raise NotFound("the export file is gone from this server's storage", code="export_file_missing")
    return path


def render_job(job: ExportJob) -> dict[str, Any]:
    return {
        "id": job.id, "object": "export", "kind": "audit", "status": job.status,
        "from": job.date_from.date().isoformat() if job.date_from else None,
        "to": job.date_to.date().isoformat() if job.date_to else None,
        "invoices": job.invoices, "bytes": job.bytes, "sha256": job.sha256, "error": job.error,
        "created_at": rfc3339(job.created_at),
        "completed_at": rfc3339(job.completed_at) if job.completed_at else None,
        "download_url": f"/v1/exports/{job.id}/download" if job.status == "ready" else None,
    }


async def _claim(db: Database) -> tuple[str, str] | None:
    now = utcnow()
    async with db.transaction() as session:
        await bind_platform(session)
        candidates = (await session.execute(
            select(ExportJob.tenant_id, ExportJob.id, ExportJob.status, ExportJob.claimed_at)
            .where(or_(ExportJob.status == "pending",
                       (ExportJob.status == "running") & (ExportJob.claimed_at < now - LEASE)))
            .order_by(ExportJob.created_at).limit(5)
        )).all()
        for tenant_id, job_id, status, claimed_at in candidates:
            same_claim = ExportJob.claimed_at.is_(None) if claimed_at is None else ExportJob.claimed_at == claimed_at
            result = await session.execute(
                update(ExportJob)
                .where(ExportJob.tenant_id == tenant_id, ExportJob.id == job_id, ExportJob.status == status, same_claim)
                .values(status="running", claimed_at=now, attempts=ExportJob.attempts + 1)
            )
            if result.rowcount == 1:
                return tenant_id, job_id
    return None


async def _finish(db: Database, tenant_id: str, job_id: str, **values: Any) -> None:
    async with db.transaction() as session:
        await bind_tenant(session, tenant_id)
        await session.execute(update(ExportJob).where(ExportJob.id == job_id).values(**values))


async def run_one(db: Database, settings: Settings) -> str | None:
    """Claim and build one export; returns its id, or None when nothing was waiting."""
    claimed = await _claim(db)
    if claimed is None:
        return None
    tenant_id, job_id = claimed
    try:
        # A checkpoint first, so that every invoice sealed so far gets its inclusion proof.
        async with db.transaction() as session:
            await bind_tenant(session, tenant_id)
            await checkpoint_if_grown(session, settings, tenant_id)
        async with db.transaction(readonly=True) as session:
            await bind_tenant(session, tenant_id)
            job = await get_export(session, job_id)
            path = export_path(settings, job)
            manifest = await write_export(session, settings, tenant_id, path, date_from=job.date_from,
                                          date_to=job.date_to)
        digest = sha256_file(path)  # in chunks: an export of a big tenant does not fit in memory
        await _finish(db, tenant_id, job_id, status="ready", file_name=path.name, sha256=digest,
                      bytes=path.stat().st_size, invoices=manifest["payload"]["counts"]["invoices"],
                      completed_at=utcnow(), error=None)
    except Exception as exc:  # recorded on the job; the runner keeps going for everyone else
        log.exception("export_failed", tenant_id=tenant_id, export_id=job_id)
        async with db.transaction(readonly=True) as session:
            await bind_tenant(session, tenant_id)
            attempts = (await get_export(session, job_id)).attempts
        await _finish(db, tenant_id, job_id, status="failed" if attempts >= MAX_ATTEMPTS else "pending",
                      error=f"{type(exc).__name__}: {exc}"[:500], claimed_at=None)
    return job_id


async def export_runner(db: Database, settings: Settings, idle: float = 1.0) -> None:
    while True:
        try:
            if await run_one(db, settings) is None:
                await asyncio.sleep(idle)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("export_runner_failed")
            await asyncio.sleep(idle)
