"""Copying one tenant's data-plane rows between two PostgreSQL databases, and proving the copy.

The copy is a diff, not a dump: for each table both sides are streamed in primary-key order as (key, row
digest) and merged, so what is missing is inserted, what changed is updated and what the source no longer
has is deleted. The same pass fills an empty target (everything is missing) and, under the move's freeze,
catches up with what changed meanwhile; running it twice changes nothing, so a move that crashed simply runs
again. Memory is bounded by one batch of rows (``STALELA_MOVE_BATCH_ROWS``), whatever the tenant's size.

A table's fingerprint is its row count and the sum of its rows' digests (order-independent, computed by each
server): equal fingerprints on both sides, for every table, are the move's proof that nothing changed.
No library does a cross-database, per-tenant diff of this kind (pg_dump and logical replication copy whole
tables or databases), hence this module.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from sqlalchemy import MetaData, Table, and_, bindparam, delete, func, insert, literal_column, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from stalela.db.routing import CONTROL_TABLES

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
    await conn.run_sync(lambda sync: meta.reflect(sync, only=lambda name, _m: name not in CONTROL_TABLES))
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
    keys: list[tuple] = field(default_factory=list)  # a catch-up's keys (the freeze compares those rows)


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


async def sync_table(table: Table, tenant_id: str, sides: Sides, batch: int) -> TableDiff:
    """Make the target's rows of ``tenant_id`` in ``table`` equal to the source's: a merge of the two
    sides in key order (the source streams whole rows, so nothing is fetched twice)."""
    diff = TableDiff()
    keys = _key(table)
    pending: dict[str, list] = {"insert": [], "update": [], "delete": []}

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
            await add("delete", b[0])
            b = await anext(dst, None)
        else:
            if a[1] != b[1]:
                await add("update", _plain(a[2]))
            a, b = await anext(src, None), await anext(dst, None)
    for kind in ("delete", "insert", "update"):
        await flush(kind)
    return diff


async def sync(tables: list[Table], tenant_id: str, sides: Sides, batch: int) -> SyncReport:
    report = SyncReport()
    for table in tables:
        report.tables[table.name] = await sync_table(table, tenant_id, sides, batch)
    return report


async def snapshot(conn: AsyncConnection) -> str:
    """The transaction snapshot a pass copied from: the freeze's catch-up starts from it."""
    return (await conn.execute(text("SELECT pg_current_snapshot()::text"))).scalar()


# Rows written by a transaction not older than a snapshot's oldest: a superset of what changed after it.
_RECENT = text("age(xmin) <= age(pg_snapshot_xmin(CAST(CAST(:since AS text) AS pg_snapshot))::xid)")


async def sync_delta(tables: list[Table], tenant_id: str, sides: Sides, since: str, batch: int) -> SyncReport:
    """Catch up with what changed after the snapshot ``since`` (the freeze): only the rows written since
    (``age(xmin)``; a row already equal is skipped by its digest), not the whole tenant again. Deleted rows
    are not seen here; the row counts compared next tell them."""
    report = SyncReport()
    for table in tables:
        diff = TableDiff()
        keys = _key(table)
        digest = literal_column(_DIGEST.format(t=table.name))
        stmt = select(table, digest.label("_digest")).where(table.c.tenant_id == tenant_id, _RECENT)
        result = await sides.source.stream(stmt.execution_options(yield_per=batch), {"since": since})
        async for chunk in result.partitions(batch):
            rows = {tuple(r._mapping[c.name] for c in keys): r for r in chunk}
            diff.keys.extend(rows)
            present = {tuple(r[:-1]): r[-1] for r in await sides.target_keys.execute(
                select(*keys, digest).where(table.c.tenant_id == tenant_id, tuple_(*keys).in_(list(rows))))}
            inserts = [_plain(r._mapping) for k, r in rows.items() if k not in present]
            updates = [_plain(r._mapping) for k, r in rows.items()
                       if k in present and present[k] != r._mapping["_digest"]]
            if inserts:
                await _write(table, tenant_id, sides.target, "insert", inserts)
            if updates:
                await _write(table, tenant_id, sides.target, "update", updates)
            diff.inserted += len(inserts)
            diff.updated += len(updates)
        report.tables[table.name] = diff
    return report


async def counts(conn: AsyncConnection, tables: list[Table], tenant_id: str) -> dict[str, int]:
    out = {}
    for table in tables:
        out[table.name] = int((await conn.execute(select(func.count()).select_from(table)
                                                  .where(table.c.tenant_id == tenant_id))).scalar())
    return out


async def keyed_digests(conn: AsyncConnection, table: Table, tenant_id: str, keys: list[tuple],
                        batch: int) -> str:
    """The sum of the digests of the rows with these keys (the catch-up's rows, on either side)."""
    digest = literal_column(_DIGEST.format(t=table.name))
    total = 0
    for i in range(0, len(keys), batch):
        part = keys[i:i + batch]
        total += int((await conn.execute(select(func.coalesce(func.sum(digest), 0)).where(
            table.c.tenant_id == tenant_id, tuple_(*_key(table)).in_(part)))).scalar())
    return format(total, "x")


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
_TENANT_LOCK = "hashtextextended('stalela.tenant:' || :t, 0)"


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
    await conn.execute(text(f"SELECT pg_advisory_lock({_TENANT_LOCK})"), {"t": tenant_id})


async def thaw(conn: AsyncConnection, tenant_id: str) -> None:
    await conn.execute(text(f"SELECT pg_advisory_unlock({_TENANT_LOCK})"), {"t": tenant_id})


async def switch(conn: AsyncConnection, tenant_id: str, move_id: str, placement: str | None, tier: str,
                 now: Any) -> None:
    """Point the tenant at its new database (the control plane's rows; the caller commits)."""
    # Transaction-local: this connection goes back to the application's pool afterwards.
    await conn.execute(text("SELECT set_config('stalela.platform', 'on', true)"))
    await conn.execute(text("UPDATE tenants SET placement = :p, tier = :tier, updated_at = :now WHERE id = :t"),
                       {"p": placement, "tier": tier, "now": now, "t": tenant_id})
    await conn.execute(text("UPDATE tenant_moves SET step = 'switched', updated_at = :now "
                            "WHERE tenant_id = :t AND id = :m"), {"now": now, "t": tenant_id, "m": move_id})


async def release(conn: AsyncConnection, tenant_id: str) -> None:
    """After the switch, on the target: the tenant's copied events are its pending events now."""
    await conn.execute(text("UPDATE outbox SET status = 'pending' WHERE tenant_id = :t AND status = :held"),
                       {"t": tenant_id, "held": HELD})


async def park(conn: AsyncConnection, tenant_id: str, revoke_role: str | None) -> None:
    """Leave the source read-only for the tenant. Its pending events were copied to the target, which
    delivers them; here they would run twice. A dedicated source is the tenant's alone: the application
    role loses every write on it."""
    await conn.execute(text("UPDATE outbox SET status = 'moved' WHERE tenant_id = :t AND status = 'pending'"),
                       {"t": tenant_id})
    if revoke_role:
        await conn.execute(text(f'REVOKE INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public FROM "{revoke_role}"'))


async def purge_rows(conn: AsyncConnection, tables: list[Table], tenant_id: str) -> None:
    """Delete a moved-away tenant's copies from a shared database, children first, past the append-only
    triggers (``session_replication_role``, which needs a superuser), for this transaction only."""
    await conn.execute(text("SET LOCAL session_replication_role = replica"))
    for table in reversed(tables):
        await conn.execute(delete(table).where(table.c.tenant_id == tenant_id))
