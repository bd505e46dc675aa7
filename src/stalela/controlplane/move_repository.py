"""Copying one tenant's data-plane rows between two PostgreSQL databases, and proving the copy.

The copy is a diff, not a dump: for each table both sides are streamed in primary-key order as (key, row
digest) and merged, so what is missing is inserted, what changed is updated and what the source no longer
has is deleted. The same pass fills an empty target (everything is missing) and, under the move's freeze,
catches up with what changed meanwhile; running it twice changes nothing, so a move that crashed simply runs
again. Memory is bounded by one batch of rows (``STALELA_MOVE_BATCH_ROWS``), whatever the tenant's size.

A table's fingerprint is its row count and the sum of its rows' digests (order-independent, computed by each
server): equal fingerprints on both sides, for every table, prove the copy as of one snapshot. From then on a
change log (``capture``: triggers logging the key of every row of the tenant written) names the rows to copy
again, and each is proven by reading it back from the target with the source's digest.
No library does a cross-database, per-tenant diff of this kind (pg_dump and logical replication copy whole
tables or databases), hence this module.
"""
from __future__ import annotations

import asyncio
import hashlib
import random
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from sqlalchemy import MetaData, Table, and_, bindparam, cast, delete, func, insert, literal_column, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from stalela.db.routing import CONTROL_TABLES
from stalela.tenancy.context import TENANT_LOCK

# The digest of a row, as the server renders it (the same schema on both sides renders rows alike; every
# move connection runs in UTC so timestamps do too). 60 bits keep the sum exact in numeric.
_DIGEST = "('x' || substr(md5(row_to_json({t})::text), 1, 15))::bit(60)::bigint"


async def prepare(conn: AsyncConnection) -> None:
    """Every connection of a move: UTC rendering, and past row-level security (the platform flag)."""
    await conn.execute(text("SET TIME ZONE 'UTC'"))
    await conn.execute(text("SELECT set_config('stalela.platform', 'on', false)"))


async def tenant_tables(conn: AsyncConnection) -> list[Table]:
    """The data-plane tables holding a tenant's rows, parents before children (foreign keys), as the
    database itself describes them (reflected: the copy follows the schema, not this process's models)."""
    meta = MetaData()
    await conn.run_sync(lambda sync: meta.reflect(sync, only=lambda name, _m: name not in CONTROL_TABLES | {CHANGES}))
    return [t for t in meta.sorted_tables if "tenant_id" in t.c and t.name not in CONTROL_TABLES]


def _key(table: Table) -> list[Any]:
    cols = list(table.primary_key.columns)
    if not cols:
        raise RuntimeError(f"table {table.name} has no primary key: it cannot be moved row by row")
    return cols


def _ordered(col: Any) -> Any:
    # Byte order on both servers, whatever their collations: Python compares the keys the same way.
    return col.collate("C") if col.type.python_type is str else col


def _rows(table: Table, tenant_id: str, *, full: bool) -> Any:
    """The tenant's rows in key order with their digests: whole rows (a source) or keys (a target)."""
    digest = literal_column(_DIGEST.format(t=table.name)).label("_digest")
    keys = _key(table)
    columns = [*table.c] if full else keys
    return (select(*columns, digest).where(table.c.tenant_id == tenant_id)
            .order_by(*(_ordered(c) for c in keys)))


async def _stream(conn: AsyncConnection, stmt: Any, keys: list[Any], batch: int) -> AsyncIterator[tuple]:
    """(key, digest, row) in key order; the row is a dict of every column for a full stream."""
    result = await conn.stream(stmt.execution_options(yield_per=batch))
    names = [c.name for c in keys]
    async for row in result:
        mapping = row._mapping
        yield tuple(mapping[n] for n in names), mapping["_digest"], mapping


def _plain(mapping: Any) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k != "_digest"}


@dataclass
class TableDiff:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    logged: int = 0  # a change-log pass: the distinct keys the log named
    mismatched: int = 0  # a change-log pass: rows whose digests differ on the two sides once written
    digests: tuple[int, int] = (0, 0)  # a change-log pass: the sums of its rows' digests, source and target


@dataclass
class SyncReport:
    tables: dict[str, TableDiff] = field(default_factory=dict)
    snapshot: str | None = None  # the source snapshot an online pass copied

    @property
    def changed(self) -> int:
        return sum(d.inserted + d.updated + d.deleted for d in self.tables.values())


@dataclass
class Sides:
    """Three connections: the source and the target stream in key order while the third writes the target
    (a connection cannot run a statement while it streams)."""

    source: AsyncConnection
    target_keys: AsyncConnection
    target: AsyncConnection


# A pending event copied to the target waits there as HELD until the switch releases it: a dispatcher of the
# target's database must not deliver it while the source's still may.
HELD = "moving"


def _held(table: Table, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if table.name != "outbox":
        return rows
    return [{**row, "status": HELD} if row["status"] == "pending" else row for row in rows]


async def _write(table: Table, tenant_id: str, target: AsyncConnection, kind: str, rows: list) -> None:
    keys = _key(table)
    if kind != "delete":
        rows = _held(table, rows)
    if kind == "delete":
        await target.execute(delete(table).where(table.c.tenant_id == tenant_id, tuple_(*keys).in_(rows)))
    elif kind == "insert":
        await target.execute(insert(table), rows)
    else:
        # One statement for the batch (executemany): keys bound under their own names.
        stmt = update(table).where(and_(*(c == bindparam(f"k_{c.name}") for c in keys)))
        await target.execute(stmt, [{**row, **{f"k_{c.name}": row[c.name] for c in keys}} for row in rows])


async def sync_table(table: Table, tenant_id: str, sides: Sides, batch: int, deletes: list) -> TableDiff:
    """Make the target's rows of ``tenant_id`` in ``table`` equal to the source's: a merge of the two
    sides in key order (the source streams whole rows, so nothing is fetched twice). Keys to delete go to
    ``deletes``: they are deleted once every table is merged, children first (foreign keys)."""
    diff = TableDiff()
    keys = _key(table)
    pending: dict[str, list] = {"insert": [], "update": []}

    async def add(kind: str, item: Any) -> None:
        pending[kind].append(item)
        if len(pending[kind]) >= batch:
            await flush(kind)

    async def flush(kind: str) -> None:
        if pending[kind]:
            rows, pending[kind] = pending[kind], []
            await _write(table, tenant_id, sides.target, kind, rows)
            counter = {"insert": "inserted", "update": "updated", "delete": "deleted"}[kind]
            setattr(diff, counter, getattr(diff, counter) + len(rows))

    src = _stream(sides.source, _rows(table, tenant_id, full=True), keys, batch)
    dst = _stream(sides.target_keys, _rows(table, tenant_id, full=False), keys, batch)
    a = await anext(src, None)
    b = await anext(dst, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a[0] < b[0]):
            await add("insert", _plain(a[2]))
            a = await anext(src, None)
        elif a is None or b[0] < a[0]:
            deletes.append(b[0])
            b = await anext(dst, None)
        else:
            if a[1] != b[1]:
                await add("update", _plain(a[2]))
            a, b = await anext(src, None), await anext(dst, None)
    for kind in ("insert", "update"):
        await flush(kind)
    return diff


async def _delete_all(tables: list[Table], tenant_id: str, target: AsyncConnection, deletes: dict[str, list],
                      report: SyncReport, batch: int) -> None:
    """Children first: a parent's row goes after the rows that refer to it (the foreign keys are checked at
    once, not deferred)."""
    for table in reversed(tables):
        keys = deletes.get(table.name) or []
        for i in range(0, len(keys), batch):
            await _write(table, tenant_id, target, "delete", keys[i:i + batch])
        report.tables[table.name].deleted += len(keys)


async def sync(tables: list[Table], tenant_id: str, sides: Sides, batch: int) -> SyncReport:
    """Every table's diff. The rows to delete are held until the end (the only ones held in memory: rows
    the source lost since the last pass, a handful where fiscal rows are never deleted)."""
    report, deletes = SyncReport(), {}
    for table in tables:
        report.tables[table.name] = await sync_table(table, tenant_id, sides, batch,
                                                     deletes.setdefault(table.name, []))
    await _delete_all(tables, tenant_id, sides.target, deletes, report, batch)
    return report


async def snapshot(conn: AsyncConnection) -> str:
    """The transaction snapshot a pass copied from: the freeze's catch-up starts from it."""
    return (await conn.execute(text("SELECT pg_current_snapshot()::text"))).scalar()


# --- the change log (migration 0032) ---------------------------------------------------------------
# While a tenant moves, triggers on its source's tables log the key of every row of the tenant written, in
# the writing transaction, with its transaction id: a pass after the copy re-reads only those rows.
CHANGES = "move_changes"
# A trigger's DDL (CREATE TRIGGER, ALTER TABLE ... DISABLE TRIGGER: SHARE ROW EXCLUSIVE, which readers pass)
# waits for the table's running writes, and every tenant's next writes queue behind it meanwhile: it gives up
# after a tenth of a second and tries again (about a minute in all), rather than holding up the whole table
# behind one long transaction. DROP TRIGGER takes ACCESS EXCLUSIVE (readers queue too): only the purge does.
_DDL_LOCK_TIMEOUT = "100ms"
_DDL_ATTEMPTS = 150


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _triggers(tenant_id: str) -> list[tuple[str, str, str]]:
    """(name, events, row) of the tenant's two capture triggers on each table (a WHEN clause cannot name NEW
    in a DELETE trigger, nor OLD in an INSERT one)."""
    tag = hashlib.sha256(tenant_id.encode()).hexdigest()[:16]
    return [(f"stalela_move_{tag}_w", "INSERT OR UPDATE", "NEW"), (f"stalela_move_{tag}_d", "DELETE", "OLD")]


async def _ddl(conn: AsyncConnection, statement: str) -> None:
    await conn.commit()  # what ran before (the session's settings) must not go with a failed attempt's rollback
    for attempt in range(_DDL_ATTEMPTS):
        try:
            await conn.execute(text(f"SET LOCAL lock_timeout = '{_DDL_LOCK_TIMEOUT}'"))
            await conn.execute(text(statement))
            await conn.commit()
            return
        except DBAPIError as exc:
            await conn.rollback()
            if "lock timeout" not in str(exc).lower() or attempt == _DDL_ATTEMPTS - 1:
                raise
            await asyncio.sleep(random.uniform(0.1, 0.6))


async def capture(conn: AsyncConnection, tables: list[Table], tenant_id: str) -> None:
    """Start logging the tenant's changes in this (source) database; idempotent (a resumed move, or an
    earlier move's triggers, disabled, made live again)."""
    for table in tables:
        keys = ", ".join(_quoted(c.name) for c in _key(table))
        for name, events, row in _triggers(tenant_id):
            await _ddl(conn, f'CREATE OR REPLACE TRIGGER {name} AFTER {events} ON "{table.name}" FOR EACH ROW '
                             f"WHEN ({row}.tenant_id = {_quoted(tenant_id)}) EXECUTE FUNCTION stalela_move_capture({keys})")
            await _ddl(conn, f'ALTER TABLE "{table.name}" ENABLE TRIGGER {name}')


async def uncapture(conn: AsyncConnection, tables: list[Table], tenant_id: str) -> None:
    """Stop logging and forget the log: the move is over, switched or failed. The triggers are disabled, not
    dropped (a drop would lock the table against every tenant's reads): the purge drops them."""
    for table, name in await _existing_triggers(conn, tables, tenant_id):
        await _ddl(conn, f'ALTER TABLE "{table}" DISABLE TRIGGER {name}')
    await conn.execute(text(f"DELETE FROM {CHANGES} WHERE tenant_id = :t"), {"t": tenant_id})
    await conn.commit()


async def drop_capture(conn: AsyncConnection, tables: list[Table], tenant_id: str) -> None:
    """The purge: the tenant's (disabled) triggers go for good."""
    for table, name in await _existing_triggers(conn, tables, tenant_id):
        await _ddl(conn, f'DROP TRIGGER IF EXISTS {name} ON "{table}"')


def trigger_names(tenant_id: str) -> list[str]:
    return [name for name, _events, _row in _triggers(tenant_id)]


async def _existing_triggers(conn: AsyncConnection, tables: list[Table], tenant_id: str) -> list[tuple[str, str]]:
    """(table, trigger) of the tenant's capture triggers that exist on ``tables``, in their order."""
    rows = await conn.execute(text("SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE tgname = ANY(:n)"),
                              {"n": trigger_names(tenant_id)})
    found = {(t.strip('"'), n) for t, n in rows}
    return [(table.name, name) for table in tables for name in trigger_names(tenant_id) if (table.name, name) in found]


async def forget(conn: AsyncConnection, tenant_id: str, snapshot_: str) -> None:
    """Drop the log entries of transactions that ``snapshot_`` sees: the pass that read the source in that
    snapshot has applied them. Entries of later transactions stay for the next pass."""
    await conn.execute(text(f"DELETE FROM {CHANGES} WHERE tenant_id = :t "
                            "AND pg_visible_in_snapshot(xact, CAST(CAST(:s AS text) AS pg_snapshot))"),
                       {"t": tenant_id, "s": snapshot_})
    await conn.commit()


async def _changed_keys(conn: AsyncConnection, table: Table, tenant_id: str, batch: int) -> AsyncIterator[list[tuple]]:
    """The keys of ``table`` the log holds (in ``conn``'s snapshot), typed as the table's own columns, a
    batch at a time: a cursor of the pass's own transaction, so memory holds one batch however much the
    tenant wrote meanwhile."""
    casts = ", ".join(f"CAST(key ->> {i} AS {c.type.compile(dialect=conn.dialect)})" for i, c in enumerate(_key(table)))
    # A cursor per table: the driver caches a statement's row shape by its text, and "FETCH n FROM c" would
    # be one text for every table.
    cursor = f"move_keys_{table.name}"
    await conn.execute(text(f"DECLARE {cursor} NO SCROLL CURSOR FOR SELECT DISTINCT {casts} FROM {CHANGES} "
                            "WHERE tenant_id = :t AND tbl = :tbl"), {"t": tenant_id, "tbl": table.name})
    try:
        while chunk := [tuple(r) for r in await conn.execute(text(f"FETCH {int(batch)} FROM {cursor}"))]:
            yield chunk
    finally:
        await conn.execute(text(f"CLOSE {cursor}"))


def _keyed(table: Table, tenant_id: str, chunk: list[tuple], *, full: bool) -> Any:
    """The tenant's rows of ``table`` with these keys, with their digests: one index lookup per key (a join
    on the unnested key columns; PostgreSQL plans a row-value IN list as an OR of scans)."""
    keys = _key(table)
    wanted = func.unnest(*(cast(bindparam(f"k{i}", [k[i] for k in chunk], type_=ARRAY(c.type)), ARRAY(c.type))
                           for i, c in enumerate(keys))).table_valued(*(f"c{i}" for i in range(len(keys)))).render_derived(name="k")
    digest = literal_column(_DIGEST.format(t=table.name)).label("_digest")
    columns = [*table.c] if full else keys
    return (select(*columns, digest).select_from(table)
            .join(wanted, and_(*(c == wanted.c[f"c{i}"] for i, c in enumerate(keys))))
            .where(table.c.tenant_id == tenant_id))


async def sync_changes(tables: list[Table], tenant_id: str, sides: Sides, batch: int) -> SyncReport:
    """Apply the changes the log holds in the source's snapshot: each changed key's row is read from the
    source and written to the target (inserted, updated, or deleted if the source no longer has it), then
    read back from the target, where its digest must equal the source's. Costs what changed, not the
    tenant's size. Deletes first, children first (foreign keys); the writer reads the target (it sees its
    own writes)."""
    report = SyncReport(tables={table.name: TableDiff() for table in tables})
    # Only the tables the log names: a pass under the freeze finds a few, and a query per table of the
    # tenant's schema was most of its time.
    named = set((await sides.source.execute(text(f"SELECT DISTINCT tbl FROM {CHANGES} WHERE tenant_id = :t"),
                                            {"t": tenant_id})).scalars())
    tables = [table for table in tables if table.name in named]
    for table in reversed(tables):
        diff = report.tables[table.name]
        async for chunk in _changed_keys(sides.source, table, tenant_id, batch):
            kept = {tuple(r[:-1]) for r in await sides.source.execute(_keyed(table, tenant_id, chunk, full=False))}
            gone = [tuple(r[:-1]) for r in await sides.target.execute(_keyed(table, tenant_id, chunk, full=False))
                    if tuple(r[:-1]) not in kept]
            if gone:
                await _write(table, tenant_id, sides.target, "delete", gone)
            diff.deleted += len(gone)
    for table in tables:
        diff = report.tables[table.name]
        names = [c.name for c in _key(table)]
        async for chunk in _changed_keys(sides.source, table, tenant_id, batch):
            source = {tuple(r._mapping[n] for n in names): r._mapping
                      for r in await sides.source.execute(_keyed(table, tenant_id, chunk, full=True))}
            present = {tuple(r[:-1]): r[-1] for r in await sides.target.execute(_keyed(table, tenant_id, chunk, full=False))}
            inserts = [_plain(m) for k, m in source.items() if k not in present]
            updates = [_plain(m) for k, m in source.items() if k in present and present[k] != m["_digest"]]
            for kind, rows in (("insert", inserts), ("update", updates)):
                if rows:
                    await _write(table, tenant_id, sides.target, kind, rows)
            diff.inserted, diff.updated, diff.logged = (diff.inserted + len(inserts), diff.updated + len(updates),
                                                        diff.logged + len(chunk))
            after = {tuple(r[:-1]): r[-1] for r in await sides.target.execute(_keyed(table, tenant_id, chunk, full=False))}
            diff.mismatched += sum(1 for k in set(after) | set(source)
                                   if k not in after or k not in source or after[k] != source[k]["_digest"])
            diff.digests = (diff.digests[0] + sum(m["_digest"] for m in source.values()),
                            diff.digests[1] + sum(after.values()))
    return report


async def fingerprint(conn: AsyncConnection, tables: list[Table], tenant_id: str,
                      skip: frozenset[str] = frozenset()) -> dict[str, dict[str, Any]]:
    """Per table (but ``skip``): the tenant's row count and the sum of its rows' digests."""
    out: dict[str, dict[str, Any]] = {}
    for table in tables:
        if table.name in skip:
            continue
        digest = literal_column(_DIGEST.format(t=table.name))
        count, total = (await conn.execute(
            select(func.count(), func.coalesce(func.sum(digest), 0)).select_from(table)
            .where(table.c.tenant_id == tenant_id))).one()
        out[table.name] = {"rows": int(count), "digest": format(int(total), "x")}
    return out


async def ledger_heads(conn: AsyncConnection, tenant_id: str) -> dict[str, Any]:
    """The Merkle log (size and frontier, from which the root follows) and every series' chain head."""
    log = (await conn.execute(text("SELECT size, frontier FROM merkle_logs WHERE tenant_id = :t"),
                              {"t": tenant_id})).first()
    heads = await conn.execute(text("SELECT outlet_id, code, counter, last_hash FROM series WHERE tenant_id = :t "
                                    "ORDER BY outlet_id COLLATE \"C\", code COLLATE \"C\""), {"t": tenant_id})
    return {"log_size": int(log[0]) if log else 0, "frontier": bytes(log[1]).hex() if log and log[1] else "",
            "chains": {f"{o}/{c}": {"counter": int(n), "head": h} for o, c, n, h in heads}}



# --- the move's locks, switch, parking and purge ----------------------------------------------------
# The tenant's lock: every write of the tenant takes it shared (tenancy.context.bind_tenant, through
# stalela_route); a move's switch takes it exclusively. The mover's own lock keeps one move per tenant.


async def try_mover_lock(conn: AsyncConnection, tenant_id: str) -> bool:
    """Session-level; the statement's transaction is committed at once, so the connection does not sit idle
    in a transaction (a server's idle_in_transaction_session_timeout would end it, and the lock with it)."""
    taken = bool((await conn.execute(text("SELECT pg_try_advisory_lock(hashtextextended('stalela.move:' || :t, 0))"),
                                     {"t": tenant_id})).scalar())
    await conn.commit()
    return taken


async def release_locks(conn: AsyncConnection) -> None:
    await conn.execute(text("SELECT pg_advisory_unlock_all()"))


async def freeze(conn: AsyncConnection, tenant_id: str) -> None:
    """Session-level: held across the transactions of the switch, released by ``thaw``."""
    await conn.execute(text(f"SELECT pg_advisory_lock({TENANT_LOCK})"), {"t": tenant_id})


async def thaw(conn: AsyncConnection, tenant_id: str) -> None:
    await conn.execute(text(f"SELECT pg_advisory_unlock({TENANT_LOCK})"), {"t": tenant_id})


async def switch(conn: AsyncConnection, tenant_id: str, move_id: str, placement: str | None, tier: str,
                 now: Any) -> None:
    """Point the tenant at its new database (the control plane's rows; the caller commits)."""
    # Transaction-local: this connection goes back to the application's pool afterwards.
    await conn.execute(text("SELECT set_config('stalela.platform', 'on', true)"))
    await conn.execute(text("UPDATE tenants SET placement = :p, tier = :tier, updated_at = :now WHERE id = :t"),
                       {"p": placement, "tier": tier, "now": now, "t": tenant_id})
    await conn.execute(text("UPDATE tenant_moves SET step = 'switched', updated_at = :now "
                            "WHERE tenant_id = :t AND id = :m"), {"now": now, "t": tenant_id, "m": move_id})


async def release(conn: AsyncConnection, tenant_id: str) -> int:
    """After the switch, on the target: the tenant's copied events are its pending events now. How many."""
    return (await conn.execute(text("UPDATE outbox SET status = 'pending' WHERE tenant_id = :t AND status = :held"),
                               {"t": tenant_id, "held": HELD})).rowcount


async def park(conn: AsyncConnection, tenant_id: str, revoke_role: str | None) -> int:
    """Leave the source read-only for the tenant. Its pending events were copied to the target, which
    delivers them; here they would run twice. A dedicated source is the tenant's alone: the application
    role loses every write on it. Returns how many events were parked."""
    parked = (await conn.execute(text("UPDATE outbox SET status = 'moved' WHERE tenant_id = :t AND status = 'pending'"),
                                 {"t": tenant_id})).rowcount
    if revoke_role:
        await conn.execute(text(f'REVOKE INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public FROM "{revoke_role}"'))
    return parked


async def purge_rows(conn: AsyncConnection, tables: list[Table], tenant_id: str) -> None:
    """Delete a moved-away tenant's copies from a shared database, children first, past the append-only
    triggers (``session_replication_role``, which needs a superuser), for this transaction only."""
    await conn.execute(text("SET LOCAL session_replication_role = replica"))
    for table in reversed(tables):
        await conn.execute(delete(table).where(table.c.tenant_id == tenant_id))
