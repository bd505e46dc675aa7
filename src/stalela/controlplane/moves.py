"""Moving a tenant between tiers (or between two servers) online, with proof that nothing changed.

A move is a job (outbox topic ``tenant.move``), one at a time per tenant:

1. ``prepared``: the target exists and is migrated (a new dedicated database is provisioned like a new
   tenant's; the shared database already is). A target still holding rows of an earlier move is refused:
   those rows are purged first, by the operator.
2. ``copied``: the tenant's change log starts on the source (move_repository.capture: per-table triggers
   for this tenant only). The tenant's rows are copied by diff (move_repository.py) while it keeps working,
   twice (the second pass catches up with what the first one missed, and both sides' figures of its
   snapshot must be equal), ``stalela verify`` runs on the copy, then passes over the change log copy what
   the tenant wrote meanwhile, each proving its rows on the target.
3. ``frozen``: the tenant's lock is taken exclusively: every write of the tenant waits on it
   (``tenancy.context.bind_tenant`` takes it shared), none fails. The rows the log names since the last
   pass are copied and proven, then the Merkle log and every chain head are compared on both sides: the
   freeze costs what was written since the last pass, not the tenant's size.
4. ``switched``: in the same freeze, one control-plane transaction points the tenant's placement at the
   target; the lock is released and waiting writes go to the target. The source is left read-only (a
   dedicated database loses its write grants; in the shared database the tenant's pending events are
   parked so no worker acts on them twice) until the operator purges it.
5. ``completed``: a receipt with both sides' figures and roots, signed with the tenant's key.

A crash before the switch leaves the tenant on the source (the placement never changed) and the job runs
again from the start: the diff copy is idempotent. A crash after it leaves the tenant on the target. Either
way the tenant serves from exactly one side.
"""
from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from stalela.config import Settings
from stalela.controlplane import move_repository, placement as placements, provisioning
from stalela.controlplane.move_receipts import sign_receipt
from stalela.controlplane.models import TenantMove
from stalela.controlplane.repository import MoveRepository
from stalela.db.base import utcnow
from stalela.db.engine import create_engine
from stalela.db.session import Database
from stalela.errors import StalelaError
from stalela.fiscal.reports.audit import verify_database
from stalela.observability.logging import get_logger
from stalela.tenancy.context import bind_platform
from stalela.tenancy.models import Tenant

log = get_logger("stalela.controlplane.moves")
TOPIC = "tenant.move"
# Tables workers write outside the tenant's lock (the dispatcher's and the export runner's claims and
# results): copied like the rest, but delivery state, not fiscal records, so they are left out of the
# frozen comparison.
OPERATIONAL = frozenset({"outbox", "export_jobs"})


class MoveFailed(StalelaError):
    status = 409
    code = "move_failed"


async def _step(db: Database, tenant_id: str, move_id: str, step: str, **values: Any) -> TenantMove:
    async with db.transaction() as session:
        await bind_platform(session)
        move = await MoveRepository(session).get_in_tenant(tenant_id, move_id)
        move.step, move.updated_at = step, utcnow()
        for name, value in values.items():
            setattr(move, name, value)
        return move


async def _tenant(db: Database, tenant_id: str) -> Tenant:
    async with db.transaction(readonly=True) as session:
        await bind_platform(session)
        return await session.get(Tenant, tenant_id)


def _owner_engine(url: str) -> AsyncEngine:
    # As the URL's user (the owner that migrated it), not the application role: the copy writes append-only
    # tables the application role may not, and a purge deletes.
    return create_engine(url, pool_size=5, statement_cache=False)


async def run(db: Database, settings: Settings, tenant_id: str, move_id: str) -> str:
    """Run (or resume) a move; returns its final status."""
    async with db.engine.connect() as mover:
        if not await move_repository.try_mover_lock(mover, tenant_id):
            raise MoveFailed("another move of this tenant is running", code="move_in_progress")
        try:
            return await _run(db, settings, tenant_id, move_id)
        except Exception as exc:
            log.exception("tenant_move_failed", tenant_id=tenant_id, move_id=move_id)
            if await _switched(db, tenant_id, move_id):
                # The tenant is on the target already: the outbox retries, which parks the source and
                # writes the receipt (the resume path), rather than a "failed" that nothing would finish.
                raise
            await _step(db, tenant_id, move_id, "failed", status="failed",
                        error=f"{type(exc).__name__}: {exc}"[:2000], completed_at=utcnow())
            return "failed"
        finally:
            await move_repository.release_locks(mover)


async def _move_and_tenant(db: Database, tenant_id: str, move_id: str) -> tuple[TenantMove | None, Tenant | None]:
    async with db.transaction(readonly=True) as session:
        await bind_platform(session)
        return (await MoveRepository(session).get_in_tenant(tenant_id, move_id), await session.get(Tenant, tenant_id))


async def _switched(db: Database, tenant_id: str, move_id: str) -> bool:
    move, tenant = await _move_and_tenant(db, tenant_id, move_id)
    return move is not None and tenant is not None and tenant.placement == move.target


async def _run(db: Database, settings: Settings, tenant_id: str, move_id: str) -> str:
    async with db.transaction(readonly=True) as session:
        await bind_platform(session)
        move = await MoveRepository(session).get_in_tenant(tenant_id, move_id)
    if move is None or move.status != "running":
        return move.status if move else "missing"
    tenant = await _tenant(db, tenant_id)
    if tenant.placement == move.target:
        # Switched before a crash: park the source (again: idempotent) and write the receipt.
        source = _owner_engine(db.fleet.url_of(move.source) if move.source else db.url)
        target = _owner_engine(db.fleet.url_of(move.target) if move.target else db.url)
        try:
            await _release_target(target, tenant_id)
            await _park_source(source, tenant_id, move.source is not None, settings.database_role)
            await _uncapture(source, await _tables(source), tenant_id)
        finally:
            await source.dispose()
            await target.dispose()
        return await _finish(db, settings, tenant_id, move_id, None)
    if tenant.placement != move.source:
        raise MoveFailed("the tenant is no longer where the move started")
    phases: dict[str, float] = {}
    mark = time.monotonic()
    source_url = db.fleet.url_of(move.source) if move.source else db.url
    target_url = db.fleet.url_of(move.target) if move.target else db.url
    if move.target is not None:
        await placements.create_database(target_url)
        await provisioning.migrate(target_url, settings)
        await provisioning.copy_tenant_row(db, tenant_id, move.target)
    await _step(db, tenant_id, move_id, "prepared")
    phases["prepare_s"], mark = round(time.monotonic() - mark, 2), time.monotonic()

    source, target = _owner_engine(source_url), _owner_engine(target_url)
    try:
        tables = await _tables(source)
        try:
            frozen, report = await _copy_and_switch(db, settings, source, target, tables, move, tenant_id,
                                                    target_url, phases, mark)
        finally:
            # Switched or failed, the log has served: the tenant's writes stop paying for it.
            await _uncapture(source, tables, tenant_id)
    finally:
        await source.dispose()
        await target.dispose()
    log.info("tenant_move_switched", tenant_id=tenant_id, move_id=move_id, freeze_ms=frozen["freeze_ms"],
             last_pass_rows=report.changed)
    return await _finish(db, settings, tenant_id, move_id, frozen)


async def _copy_and_switch(db: Database, settings: Settings, source: AsyncEngine, target: AsyncEngine, tables: list,
                           move: TenantMove, tenant_id: str, target_url: str, phases: dict[str, float],
                           mark: float) -> tuple[dict[str, Any], move_repository.SyncReport]:
    batch = settings.move_batch_rows
    # The change log first: every write of the tenant from here on is in it, those the copy races with too.
    async with source.connect() as conn:
        await move_repository.prepare(conn)
        await move_repository.capture(conn, tables, tenant_id)
    # Online, twice: the second pass picks up what changed during the first, and both sides' figures of its
    # snapshot must be equal: the proof that the freeze then only has to extend, by the log's changes.
    await _sync(source, target, tables, tenant_id, batch)
    report, copied = await _sync(source, target, tables, tenant_id, batch, fingerprints=True)
    differing = _differences(copied["source"], copied["target"])
    if differing:
        raise MoveFailed(f"the copy differs from its source: {', '.join(differing)}")
    await _forget(source, tenant_id, report.snapshot)
    await _step(db, tenant_id, move.id, "copied")
    phases["copy_s"], mark = round(time.monotonic() - mark, 2), time.monotonic()
    verified = await _verify_copy(db, target_url, tenant_id)
    phases["verify_s"], mark = round(time.monotonic() - mark, 2), time.monotonic()
    if not verified["valid"]:
        raise MoveFailed(f"the copy does not verify: {verified['first_problem']}")
    rows = {name: figures["rows"] for name, figures in copied["source"]["tables"].items()}
    online = await _catch_up_online(source, target, tables, tenant_id, batch, rows)
    phases["catch_up_s"] = round(time.monotonic() - mark, 2)
    frozen = await _freeze_and_switch(db, settings, source, target, tables, move, tenant_id, rows)
    return {**frozen, "online_catch_up": online, "copied": copied, "verify": verified, "phases": phases}, report


async def _tables(engine: AsyncEngine) -> list:
    async with engine.connect() as conn:
        return await move_repository.tenant_tables(conn)


async def _sync(source: AsyncEngine, target: AsyncEngine, tables: list, tenant_id: str, batch: int, *,
                changes: bool = False, fingerprints: bool = False) -> tuple[move_repository.SyncReport, dict | None]:
    """One pass: the full diff, or (``changes``) only the rows the change log names. The source is read in
    one REPEATABLE READ transaction, so a pass copies the tenant as of one instant (its ``snapshot``): a
    copy that verifies on its own. ``fingerprints``: also both sides' figures of that instant (the source's
    from the pass's own snapshot, the target's once the pass committed)."""
    async with AsyncExitStack() as stack:
        reader = await stack.enter_async_context(source.connect())
        reader = await reader.execution_options(isolation_level="REPEATABLE READ")
        target_keys = await stack.enter_async_context(target.connect())
        async with target.begin() as writer:
            for conn in (reader, target_keys, writer):
                await move_repository.prepare(conn)
            sides = move_repository.Sides(reader, target_keys, writer)
            # The snapshot the whole pass reads in (a REPEATABLE READ transaction keeps its first one).
            snapshot = await move_repository.snapshot(reader)
            if changes:
                report = await move_repository.sync_changes(tables, tenant_id, sides, batch)
            else:
                report = await move_repository.sync(tables, tenant_id, sides, batch)
            report.snapshot = snapshot
        if not fingerprints:
            return report, None
        figures = await _fingerprints(source, target, tables, tenant_id, source_conn=reader)
        return report, figures


async def _forget(source: AsyncEngine, tenant_id: str, snapshot: str | None) -> None:
    async with source.connect() as conn:
        await move_repository.prepare(conn)
        await move_repository.forget(conn, tenant_id, snapshot)


async def _uncapture(source: AsyncEngine, tables: list, tenant_id: str) -> None:
    """Best effort: after the switch nothing depends on it (the source takes no more writes of the tenant),
    and before it a failed move must report its own error. Left over, the triggers log the tenant's writes
    until its next move (which replaces them), or the operator drops them (docs/operations.md)."""
    try:
        async with source.connect() as conn:
            await move_repository.prepare(conn)
            await move_repository.uncapture(conn, tables, tenant_id)
    except Exception:
        log.exception("tenant_move_uncapture_failed", tenant_id=tenant_id)


async def _verify_copy(db: Database, target_url: str, tenant_id: str) -> dict[str, Any]:
    """``stalela verify`` on the target before any request reaches it: every seal, chain, counter and root."""
    pinned = Database(target_url, role=db.role, pool_size=2, control=db, pinned=True)
    try:
        report = await verify_database(pinned, tenant_id)
    finally:
        await pinned.dispose()
    return {"valid": report.valid, "invoices": report.invoices, "series": report.series,
            "first_problem": report.failures[0].describe() if report.failures else None}


async def _fingerprints(source: AsyncEngine, target: AsyncEngine, tables: list, tenant_id: str, *,
                        source_conn: AsyncConnection | None = None) -> dict[str, dict]:
    """Every table's row count and digest sum, the Merkle log and the chain heads, on both sides at once
    (``source_conn``: read the source in that connection's snapshot)."""
    async def side(engine: AsyncEngine, conn: AsyncConnection | None) -> dict:
        async with AsyncExitStack() as stack:
            if conn is None:
                conn = await stack.enter_async_context(engine.connect())
                await move_repository.prepare(conn)
            figures = await move_repository.fingerprint(conn, tables, tenant_id, skip=OPERATIONAL)
            return {"tables": figures, "ledger": await move_repository.ledger_heads(conn, tenant_id)}

    source_side, target_side = await asyncio.gather(side(source, source_conn), side(target, None))
    return {"source": source_side, "target": target_side}


def _differences(a: dict, b: dict) -> list[str]:
    tables = [name for name in a["tables"] if name not in OPERATIONAL and a["tables"][name] != b["tables"].get(name)]
    return tables + (["ledger"] if a["ledger"] != b["ledger"] else [])


# Online passes over the change log before the freeze, until one has at most this many changed rows to copy
# (the freeze's share) or this many passes have run (a tenant writing faster than a pass copies: the freeze
# takes the rest).
ONLINE_PASS_ROWS = 1000
ONLINE_PASSES = 5


def _carry(rows: dict[str, int], report: move_repository.SyncReport) -> None:
    """Row counts carried forward by a change-log pass: before it the target held exactly the source's
    rows of the previous snapshot (proven), so its inserts and deletes are the source's net change."""
    for name, diff in report.tables.items():
        if name in rows:
            rows[name] += diff.inserted - diff.deleted


def _mismatched(report: move_repository.SyncReport) -> list[str]:
    return [name for name, diff in report.tables.items() if diff.mismatched and name not in OPERATIONAL]


async def _catch_up_online(source: AsyncEngine, target: AsyncEngine, tables: list, tenant_id: str, batch: int,
                           rows: dict[str, int]) -> list[dict[str, Any]]:
    """What the tenant wrote during the copy and the verification, applied while it keeps working, so that
    the freeze only has the last moments' writes to copy. Each pass proves its rows (read back from the
    target, equal digests) before the log forgets them."""
    passes = []
    for _ in range(ONLINE_PASSES):
        mark = time.monotonic()
        report, _ = await _sync(source, target, tables, tenant_id, batch, changes=True)
        if differing := _mismatched(report):
            raise MoveFailed(f"a catch-up pass left rows different on the target: {', '.join(differing)}")
        _carry(rows, report)
        await _forget(source, tenant_id, report.snapshot)
        keys = sum(d.logged for d in report.tables.values())
        passes.append({"rows": report.changed, "keys": keys, "ms": round((time.monotonic() - mark) * 1000, 1)})
        if keys <= ONLINE_PASS_ROWS:
            break
    return passes


async def _caught_up(source: AsyncEngine, target: AsyncEngine, tenant_id: str, delta: move_repository.SyncReport,
                     rows: dict[str, int]) -> dict[str, Any]:
    """Under the freeze, after the last catch-up: is the target now the source? The online pass proved them
    equal as of its snapshot (every table's rows and digest sum); every row written since is in the change
    log, and each pass over it read every such row back from the target with the source's digest (a row
    deleted from the source: absent from both). What remains to compare is the ledger itself: the Merkle
    log and every chain head, on both sides. Costs what changed, not the tenant's size."""
    async def side(engine: AsyncEngine, n: int) -> dict:
        async with engine.connect() as conn:
            await move_repository.prepare(conn)
            caught_up = {name: format(diff.digests[n], "x") for name, diff in delta.tables.items()
                         if diff.logged and name not in OPERATIONAL}
            return {"rows": dict(rows), "caught_up": caught_up,
                    "ledger": await move_repository.ledger_heads(conn, tenant_id)}

    a, b = await asyncio.gather(side(source, 0), side(target, 1))
    differing = _mismatched(delta) + (["ledger"] if a["ledger"] != b["ledger"] else [])
    return {"source": a, "target": b, "differing": differing}


async def _freeze_and_switch(db: Database, settings: Settings, source: AsyncEngine, target: AsyncEngine,
                             tables: list, move: TenantMove, tenant_id: str, rows: dict[str, int]) -> dict[str, Any]:
    batch = settings.move_batch_rows
    async with AsyncExitStack() as stack:
        lock = await stack.enter_async_context(db.engine.connect())
        started = time.monotonic()
        # Writes of the tenant already running finish first; new ones queue behind this lock. A dedicated
        # source commits apart from the control plane: its own copy of the lock waits for those commits too
        # (control plane first, as every writer takes them, so the two can never deadlock).
        held = [lock]
        if move.source is not None:
            held.append(await stack.enter_async_context(source.connect()))
        frozen_on: list[AsyncConnection] = []
        try:
            for conn in held:
                try:
                    await asyncio.wait_for(move_repository.freeze(conn, tenant_id), settings.move_freeze_timeout_seconds)
                except BaseException:
                    # Cancelled half-way, the lock may still come: never give this connection back to a pool.
                    await conn.invalidate()
                    raise
                frozen_on.append(conn)
                await conn.commit()
            timings: dict[str, Any] = {"lock_wait_ms": round((time.monotonic() - started) * 1000, 1)}
            mark = time.monotonic()
            delta, _ = await _sync(source, target, tables, tenant_id, batch, changes=True)
            _carry(rows, delta)
            timings["catch_up_ms"] = round((time.monotonic() - mark) * 1000, 1)
            timings["rows_caught_up"] = delta.changed
            mark = time.monotonic()
            check = await _caught_up(source, target, tenant_id, delta, rows)
            timings["compare_ms"] = round((time.monotonic() - mark) * 1000, 1)
            if check["differing"]:
                # The log missed something (a change it cannot see: TRUNCATE, triggers bypassed by hand):
                # the full diff, and the full comparison, still under the freeze.
                log.warning("tenant_move_full_pass", tenant_id=tenant_id, differing=check["differing"])
                await _sync(source, target, tables, tenant_id, batch)
                full = await _fingerprints(source, target, tables, tenant_id)
                differing = _differences(full["source"], full["target"])
                timings["full_pass"] = True
                if differing:
                    raise MoveFailed(f"source and target still differ under the freeze: {', '.join(differing)}")
                check = {side: {"rows": {n: f["rows"] for n, f in full[side]["tables"].items()},
                                "ledger": full[side]["ledger"]} for side in ("source", "target")}
            mark = time.monotonic()
            await move_repository.switch(lock, tenant_id, move.id, move.target, move.to_tier, utcnow())
            await lock.commit()  # the switch: one control-plane transaction
            switched_at = utcnow()
            timings["switch_ms"], mark = round((time.monotonic() - mark) * 1000, 1), time.monotonic()
            # Only now, still frozen: a switch that failed must leave both sides as they were.
            # Both cost the events still pending at the switch (the outbox's backlog), not the tenant's size;
            # two databases, so at once (each is idempotent: a resumed move runs them again).
            # Both end before the thaw, whatever happens to the other: a failure is raised once both are done.
            handed = await asyncio.gather(
                _release_target(target, tenant_id),
                _park_source(source, tenant_id, move.source is not None, settings.database_role),
                return_exceptions=True)
            for outcome in handed:
                if isinstance(outcome, BaseException):
                    raise outcome
            timings["events_released"], timings["events_parked"] = handed
            timings["handover_ms"] = round((time.monotonic() - mark) * 1000, 1)
        finally:
            for conn in frozen_on:
                await move_repository.thaw(conn, tenant_id)
                await conn.commit()
        return {"freeze_ms": round((time.monotonic() - started) * 1000, 1), "freeze": timings,
                "switched_at": switched_at.isoformat(), "at_switch": check}


async def _release_target(target: AsyncEngine, tenant_id: str) -> int:
    async with target.begin() as conn:
        await move_repository.prepare(conn)
        return await move_repository.release(conn, tenant_id)


async def _park_source(source: AsyncEngine, tenant_id: str, dedicated: bool, role: str) -> int:
    async with source.begin() as conn:
        await move_repository.prepare(conn)
        return await move_repository.park(conn, tenant_id, role if dedicated and role else None)


async def _finish(db: Database, settings: Settings, tenant_id: str, move_id: str,
                  frozen: dict[str, Any] | None) -> str:
    async with db.transaction() as session:
        await bind_platform(session)
        move = await MoveRepository(session).get_in_tenant(tenant_id, move_id)
        receipt = await sign_receipt(session, settings, move, frozen)
        move.receipt, move.status, move.step = receipt, "completed", "completed"
        move.completed_at = move.updated_at = utcnow()
    log.info("tenant_move_completed", tenant_id=tenant_id, move_id=move_id)
    return "completed"


async def purge(db: Database, settings: Settings, tenant_id: str, move_id: str) -> None:
    """The operator's purge of a completed move's source: a dedicated database is dropped; in the shared
    database the tenant's rows are deleted, children first. The rows are copies: the receipt proved them
    equal to the tenant's live ones, which nothing touches here. Under the tenant's mover lock: no move
    may switch the tenant back onto this source between the check and the drop."""
    async with db.engine.connect() as mover:
        if not await move_repository.try_mover_lock(mover, tenant_id):
            raise MoveFailed("a move of this tenant is running; purge after it", code="move_in_progress")
        try:
            await _purge(db, tenant_id, move_id)
        finally:
            await move_repository.release_locks(mover)


async def _purge(db: Database, tenant_id: str, move_id: str) -> None:
    move, tenant = await _move_and_tenant(db, tenant_id, move_id)
    if move is None or move.purged_at is not None or move.status != "completed" or tenant.placement == move.source:
        return
    if move.source is not None:
        url = db.fleet.url_of(move.source)
        stale = db.fleet.open_databases().get(move.source)
        if stale is not None:
            await stale.engine.dispose()
        await placements.drop_database(url)
    else:
        engine = _owner_engine(db.url)
        try:
            tables = await _tables(engine)
            async with engine.begin() as conn:
                await move_repository.prepare(conn)
                await move_repository.purge_rows(conn, tables, tenant_id)
            async with engine.connect() as conn:
                await move_repository.prepare(conn)
                await move_repository.drop_capture(conn, tables, tenant_id)
        finally:
            await engine.dispose()
    async with db.transaction() as session:
        await bind_platform(session)
        move = await MoveRepository(session).get_in_tenant(tenant_id, move_id)
        move.purged_at = move.updated_at = utcnow()
    log.info("tenant_move_source_purged", tenant_id=tenant_id, move_id=move_id)
