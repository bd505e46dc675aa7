"""Provisioning a dedicated tenant: a job with a visible state, resumable after a crash.

Registration (the request) writes the tenant (``provisioning``, its placement chosen), its first API key and
the job's row, and enqueues one outbox event. The worker then runs the steps below in order, each in its
own transaction and each idempotent, recording the step it reached; a crash anywhere (the kill -9 test)
leaves the job at its last recorded step, and the outbox's retry resumes it there.

    registered -> database (created on its server) -> migrated (schema, roles, row-level security)
               -> seeded (the tenant's row copied in, its signing key) -> active
"""
from __future__ import annotations

import fcntl
import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.audit.service import record
from stalela.config import Settings
from stalela.controlplane import placement as placements
from stalela.controlplane.models import TenantProvisioning
from stalela.controlplane import repository
from stalela.controlplane.repository import ProvisioningRepository
from stalela.db.base import utcnow
from stalela.db.session import Database
from stalela.fiscal.signing import registry as signing_registry
from stalela.fiscal.signing.repository import SigningKeyRepository
from stalela.observability.logging import get_logger
from stalela.outbox.service import enqueue
from stalela.tenancy.context import bind_platform, bind_tenant
from stalela.tenancy.models import Tenant

log = get_logger("stalela.controlplane.provisioning")
TOPIC = "tenant.provisioning"
STEPS = ("registered", "database", "migrated", "seeded", "active")

# Runs the migrations on a new database: stalela.migrations.upgrade, set by the composition root (app,
# workers, CLI), because the migrations package sits above this one (it needs every domain's tables).
Migrator = Callable[..., Awaitable[None]]
migrator: Migrator | None = None


async def migrate(url: str, settings: Settings) -> None:
    """A new database's migrations (provisioning's step, and a move's dedicated target)."""
    if migrator is None:
        raise RuntimeError("no migrator installed: the composition root sets provisioning.migrator")
    await migrator(url, app_role=settings.database_role)


def start(session: AsyncSession, tenant_id: str, *, idempotency_key: str | None, request_hash: str,
          dedicated: bool) -> TenantProvisioning:
    """The job's row (and, for the dedicated tier, its first event) in the registration's transaction."""
    now = utcnow()
    job = TenantProvisioning(tenant_id=tenant_id, idempotency_key=idempotency_key, request_hash=request_hash,
                             step="registered" if dedicated else "active",
                             status="running" if dedicated else "completed", attempts=0,
                             created_at=now, updated_at=now)
    session.add(job)
    if dedicated:
        enqueue(session, tenant_id, TOPIC, {"tenant_id": tenant_id})
    return job


class Busy(Exception):
    """Another runner (a worker, or ``stalela tenant create --wait``) is provisioning this tenant now."""


async def run(db: Database, settings: Settings, tenant_id: str, *, final_attempt: bool = False,
              resume_failed: bool = False) -> str:
    """Run the job from the step it reached to the end; returns the final step. Idempotent, and one runner
    at a time per tenant (``Busy`` otherwise): two runners of one step would race on CREATE DATABASE and
    on the migrations. A failing step records its error on the job and raises (the outbox retries with
    backoff); on the ``final_attempt`` the job is ``failed`` until the dead event is replayed
    (``resume_failed``)."""
    async with _exclusive(db, tenant_id) as mine:
        if not mine:
            raise Busy(tenant_id)
        while True:
            async with db.transaction() as session:
                await bind_platform(session)
                job = await ProvisioningRepository(session).get_for_update(tenant_id)
                tenant = await session.get(Tenant, tenant_id)
                if job is not None and job.status == "failed" and resume_failed:
                    job.status = "running"
                if job is None or tenant is None or job.status != "running":
                    return job.step if job else "missing"
                step = STEPS[STEPS.index(job.step) + 1]
                job.attempts += 1
                placement = tenant.placement
            try:
                await _do(db, settings, tenant_id, placement, step)
            except Exception as exc:
                async with db.transaction() as session:
                    await bind_platform(session)
                    job = await ProvisioningRepository(session).get_for_update(tenant_id)
                    job.error = f"{step}: {type(exc).__name__}: {exc}"[:2000]
                    if final_attempt:
                        job.status = "failed"
                log.warning("tenant_provisioning_failed", tenant_id=tenant_id, step=step, final=final_attempt,
                            error=str(exc)[:200])
                raise
            async with db.transaction() as session:
                await bind_platform(session)
                job = await ProvisioningRepository(session).get_for_update(tenant_id)
                job.step, job.error = step, None
                if step == "active":
                    job.status = "completed"
                    tenant = await session.get(Tenant, tenant_id, with_for_update=True)
                    tenant.status, tenant.updated_at = "active", utcnow()
            log.info("tenant_provisioning_step", tenant_id=tenant_id, step=step)
            if settings.provisioning_exit_after_step == step:
                os._exit(137)  # the kill -9 test: dead right after the step commits
            if step == "active":
                return step


@asynccontextmanager
async def _exclusive(db: Database, tenant_id: str) -> AsyncIterator[bool]:
    """Whether this runner may provision ``tenant_id`` now, held for the block. PostgreSQL: a session
    advisory lock on the control plane (released if the process dies with its connection). SQLite
    (embedded, one host): an flock on a file beside the control plane's database, which the kernel
    releases when the process dies; two runners in one process conflict too (one open file each)."""
    if not db.is_sqlite:
        async with db.engine.connect() as conn:
            key = f"provisioning:{tenant_id}"
            got = await repository.try_lock(conn, key)
            await conn.commit()  # no transaction left open for the job's length: the lock is the session's
            try:
                yield got
            finally:
                if got:
                    await repository.unlock(conn, key)
                    await conn.commit()
        return
    database = make_url(db.url).database
    if not database or database == ":memory:":
        yield True  # a private in-memory database: one process, nobody to race with
        return
    folder = Path(f"{database}.locks")
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"provisioning-{tenant_id}", "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


async def _do(db: Database, settings: Settings, tenant_id: str, placement: str | None, step: str) -> None:
    if placement is None:
        return  # a shared tenant has no database of its own: every step is already done
    url = db.fleet.url_of(placement)
    if step == "database":
        await placements.create_database(url)
    elif step == "migrated":
        await migrate(url, settings)
    elif step == "seeded":
        await seed(db, settings, tenant_id, placement)


async def copy_tenant_row(db: Database, tenant_id: str, placement: str, row: dict | None = None) -> None:
    """The tenant's own row in its database, which the data plane's foreign keys point at (the control
    plane's row stays the truth: reads of ``tenants`` go there). An upsert: provisioning writes it, a
    rename (PATCH) refreshes it with ``row``, the control plane's values."""
    if row is None:
        async with db.transaction() as session:
            await bind_platform(session)
            tenant = await session.get(Tenant, tenant_id)
            row = tenant_row(tenant)
    target = db.fleet.database(placement)
    async with target.engine.begin() as conn:
        await repository.upsert_tenant_row(conn, row)


def tenant_row(tenant: Tenant) -> dict:
    return {c.name: getattr(tenant, c.key) for c in Tenant.__table__.columns}


async def seed(db: Database, settings: Settings, tenant_id: str, placement: str) -> None:
    await copy_tenant_row(db, tenant_id, placement)
    async with db.transaction() as session:
        await bind_tenant(session, tenant_id)
        if await SigningKeyRepository(session).active(tenant_id) is None:
            await signing_registry.create_key(session, settings, tenant_id)
            await record(session, tenant_id, "operator", "tenant.provisioned", tenant_id,
                         {"tier": "dedicated", "server": placements.server_of(placement)})
