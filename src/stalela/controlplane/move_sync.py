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


def _pk_rows(table: Table, tenant_id: str) -> Any:
    digest = literal_column(_DIGEST.format(t=table.name))
    keys = _key(table)
    return (select(*keys, digest).where(table.c.tenant_id == tenant_id)
            .order_by(*(_ordered(c) for c in keys)))


async def _stream(conn: AsyncConnection, stmt: Any, batch: int) -> AsyncIterator[tuple[tuple, int]]:
    result = await conn.stream(stmt.execution_options(yield_per=batch))
    async for row in result:
        yield tuple(row[:-1]), row[-1]


@dataclass
class TableDiff:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0


@dataclass
class SyncReport:
    tables: dict[str, TableDiff] = field(default_factory=dict)
    snapshot: str | None = None  # the source snapshot an online pass copied

    @property
    def changed(self) -> int:
        return sum(d.inserted + d.updated + d.deleted for d in self.tables.values())


@dataclass
class Sides:
    """Four connections: two stream the keys in order while the other two read and write whole rows (one
    connection cannot run a statement while it streams)."""

    source_keys: AsyncConnection
    source_rows: AsyncConnection
    target_keys: AsyncConnection
    target: AsyncConnection


async def sync_table(table: Table, tenant_id: str, sides: Sides, batch: int) -> TableDiff:
    """Make the target's rows of ``tenant_id`` in ``table`` equal to the source's."""
    source, target = sides.source_rows, sides.target
    diff = TableDiff()
    keys = _key(table)
    pending: dict[str, list[tuple]] = {"insert": [], "update": [], "delete": []}

    async def flush(kind: str) -> None:
        rows = pending[kind]
        if not rows:
            return
        pending[kind] = []
        match = tuple_(*keys).in_(rows)
        if kind == "delete":
            await target.execute(delete(table).where(table.c.tenant_id == tenant_id, match))
            diff.deleted += len(rows)
            return
        full = [dict(r._mapping) for r in await source.execute(select(table).where(table.c.tenant_id == tenant_id,
                                                                                  match))]
        if kind == "insert":
            await target.execute(insert(table), full)
            diff.inserted += len(full)
        else:
            # One statement for the batch (executemany): keys bound under their own names.
            stmt = update(table).where(and_(*(c == bindparam(f"k_{c.name}") for c in keys)))
            await target.execute(stmt, [{**row, **{f"k_{c.name}": row[c.name] for c in keys}} for row in full])
            diff.updated += len(full)

    def add(kind: str, key: tuple) -> Any:
        pending[kind].append(key)
        return flush(kind) if len(pending[kind]) >= batch else None

    src = _stream(sides.source_keys, _pk_rows(table, tenant_id), batch)
    dst = _stream(sides.target_keys, _pk_rows(table, tenant_id), batch)
    a = await anext(src, None)
    b = await anext(dst, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a[0] < b[0]):
            step = add("insert", a[0])
            a = await anext(src, None)
        elif a is None or b[0] < a[0]:
            step = add("delete", b[0])
            b = await anext(dst, None)
        else:
            step = add("update", a[0]) if a[1] != b[1] else None
            a, b = await anext(src, None), await anext(dst, None)
        if step is not None:
            await step
    # Deletes first: a row re-inserted under the same key (never for append-only tables) must not collide.
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


async def sync_delta(tables: list[Table], tenant_id: str, sides: Sides, since: str, batch: int) -> SyncReport:
    """Catch up with what changed after the snapshot ``since``: only rows written by a transaction not
    older than that snapshot's oldest (``age(xmin)``; a superset, so a row already equal is skipped by its
    digest), not the whole tenant again. Deleted rows are not seen here: the fingerprints that follow
    would differ, and the caller then runs the full diff."""
    report = SyncReport()
    recent = text("age(xmin) <= age(pg_snapshot_xmin(CAST(CAST(:since AS text) AS pg_snapshot))::xid)")
    for table in tables:
        diff = TableDiff()
        keys = _key(table)
        digest = literal_column(_DIGEST.format(t=table.name))
        stmt = select(table, digest.label("_digest")).where(table.c.tenant_id == tenant_id, recent)
        result = await sides.source_keys.stream(stmt.execution_options(yield_per=batch), {"since": since})
        async for chunk in result.partitions(batch):
            rows = {tuple(r._mapping[c.name] for c in keys): r for r in chunk}
            present = {tuple(r[:-1]): r[-1] for r in await sides.target_keys.execute(
                select(*keys, digest).where(table.c.tenant_id == tenant_id, tuple_(*keys).in_(list(rows))))}
            inserts = [_plain(r) for k, r in rows.items() if k not in present]
            updates = [_plain(r) for k, r in rows.items() if k in present and present[k] != r._mapping["_digest"]]
            if inserts:
                await sides.target.execute(insert(table), inserts)
            if updates:
                stmt_u = update(table).where(and_(*(c == bindparam(f"k_{c.name}") for c in keys)))
                await sides.target.execute(stmt_u, [{**u, **{f"k_{c.name}": u[c.name] for c in keys}} for u in updates])
            diff.inserted += len(inserts)
            diff.updated += len(updates)
        report.tables[table.name] = diff
    return report


def _plain(row: Any) -> dict[str, Any]:
    return {k: v for k, v in row._mapping.items() if k != "_digest"}


async def fingerprint(conn: AsyncConnection, tables: list[Table], tenant_id: str) -> dict[str, dict[str, Any]]:
    """Per table: the tenant's row count and the sum of its rows' digests."""
    out: dict[str, dict[str, Any]] = {}
    for table in tables:
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

