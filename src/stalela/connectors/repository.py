"""All SQL of the connectors. ``connections`` is read across tenants only by its id (a webhook) and by the
poll schedule, both on a platform-bound session; everything else runs bound to the tenant."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from stalela.connectors.models import Connection, ConnectorDelivery, ConnectorOrder
from stalela.db.repository import Repository, check_cursor
from stalela.tenancy.context import current_tenant


def _insert(session: Any) -> Any:
    return pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert


class ConnectionRepository(Repository[Connection]):
    model = Connection

    async def get(self, id_: str, *, lock: bool = False) -> Connection | None:
        stmt = select(Connection).where(Connection.id == id_)
        if lock:
            stmt = stmt.with_for_update().execution_options(populate_existing=True)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def live_for_shop(self, platform: str, shop: str) -> Connection | None:
        stmt = select(Connection).where(Connection.platform == platform, Connection.shop == shop,
                                        Connection.status != "deleted")
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def list(self, *, limit: int, starting_after: str | None) -> tuple[list[Connection], bool]:
        live = select(Connection).where(Connection.status != "deleted")
        return await self.page(live, limit=limit, starting_after=starting_after, scope=select(Connection))

    async def of_tenant(self) -> list[Connection]:
        """Every connection of the bound tenant, deleted ones included (their orders still count)."""
        return list((await self.session.execute(select(Connection).order_by(Connection.id))).scalars())

    async def due(self, now: datetime, limit: int) -> list[Connection]:
        """Active connections whose poll is due, most overdue first (platform-bound: every tenant)."""
        stmt = (select(Connection).where(Connection.status == "active", Connection.next_poll_at <= now)
                .order_by(Connection.next_poll_at).limit(limit))
        return list((await self.session.execute(stmt)).scalars())

    async def claim_poll(self, connection: Connection, next_at: datetime) -> bool:
        """Move the connection's next poll on, unless another process did first (compare and set): two
        workers that both found it due do not both poll it."""
        stmt = (update(Connection).where(Connection.tenant_id == connection.tenant_id, Connection.id == connection.id,
                                         Connection.next_poll_at == connection.next_poll_at)
                .values(next_poll_at=next_at).execution_options(synchronize_session=False))
        return (await self.session.execute(stmt)).rowcount == 1


class DeliveryRepository(Repository[ConnectorDelivery]):
    model = ConnectorDelivery

    async def add_new(self, row: ConnectorDelivery) -> bool:
        """Store the delivery unless one with its dedup key is stored already; True when it was new."""
        values = {c.key: getattr(row, c.key) for c in ConnectorDelivery.__table__.columns}
        stmt = (_insert(self.session)(ConnectorDelivery).values(**values)
                .on_conflict_do_nothing(index_elements=["tenant_id", "connection_id", "dedup_key"]))
        return (await self.session.execute(stmt)).rowcount == 1

    async def last_received(self, connection_ids: list[str]) -> dict[str, Any]:
        stmt = (select(ConnectorDelivery.connection_id, func.max(ConnectorDelivery.received_at))
                .where(ConnectorDelivery.connection_id.in_(connection_ids)).group_by(ConnectorDelivery.connection_id))
        return dict((await self.session.execute(stmt)).all())

    async def by_connection(self, connection_id: str, *, limit: int,
                            starting_after: str | None) -> tuple[list[ConnectorDelivery], bool]:
        stmt = select(ConnectorDelivery).where(ConnectorDelivery.connection_id == connection_id)
        return await self.page(stmt, limit=limit, starting_after=starting_after)


class OrderRepository:
    def __init__(self, session: Any) -> None:
        self.session = session

    async def locked(self, connection_id: str, order_key: str, order_id: str, version: str,
                     now: datetime) -> ConnectorOrder:
        """The order's row, created if new, locked for this transaction: every delivery, poll and retry of one
        order runs one at a time from here to the commit."""
        tenant = current_tenant(self.session)
        await self.session.execute(
            _insert(self.session)(ConnectorOrder).values(
                tenant_id=tenant, connection_id=connection_id, order_key=order_key, order_id=order_id,
                status="pending", version="", write_back="none", created_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=["tenant_id", "connection_id", "order_key"]))
        return await self.get(connection_id, order_key, lock=True)

    async def get(self, connection_id: str, order_key: str, *, lock: bool = False) -> ConnectorOrder | None:
        stmt = select(ConnectorOrder).where(ConnectorOrder.connection_id == connection_id,
                                            ConnectorOrder.order_key == order_key)
        if lock:
            stmt = stmt.with_for_update().execution_options(populate_existing=True)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def counts(self, connection_ids: list[str]) -> dict[str, dict[str, int]]:
        stmt = (select(ConnectorOrder.connection_id, ConnectorOrder.status, func.count())
                .where(ConnectorOrder.connection_id.in_(connection_ids))
                .group_by(ConnectorOrder.connection_id, ConnectorOrder.status))
        found: dict[str, dict[str, int]] = {c: {} for c in connection_ids}
        for connection_id, status, n in (await self.session.execute(stmt)).all():
            found[connection_id][status] = n
        return found

    async def list(self, connection_id: str, status: str | None, *, limit: int,
                   starting_after: str | None) -> tuple[list[ConnectorOrder], bool]:
        """Newest change first; the cursor is an order key of this connection."""
        scope = select(ConnectorOrder).where(ConnectorOrder.connection_id == connection_id)
        stmt = scope if status is None else scope.where(ConnectorOrder.status == status)
        if starting_after:
            await check_cursor(self.session, scope, ConnectorOrder.order_key, starting_after)
            anchor = await self.get(connection_id, starting_after)
            stmt = stmt.where((ConnectorOrder.updated_at < anchor.updated_at)
                              | ((ConnectorOrder.updated_at == anchor.updated_at)
                                 & (ConnectorOrder.order_key < starting_after)))
        stmt = stmt.order_by(ConnectorOrder.updated_at.desc(), ConnectorOrder.order_key.desc()).limit(limit + 1)
        rows = list((await self.session.execute(stmt)).scalars())
        return rows[:limit], len(rows) > limit

    async def counts_between(self, start: datetime, end: datetime) -> dict[str, dict[str, int]]:
        """Orders first seen in [start, end), by connection and status (analytics: orders vs invoices)."""
        stmt = (select(ConnectorOrder.connection_id, ConnectorOrder.status, func.count())
                .where(ConnectorOrder.created_at >= start, ConnectorOrder.created_at < end)
                .group_by(ConnectorOrder.connection_id, ConnectorOrder.status))
        found: dict[str, dict[str, int]] = {}
        for connection_id, status, n in (await self.session.execute(stmt)).all():
            found.setdefault(connection_id, {})[status] = n
        return found

    async def write_back_pending(self, connection_id: str, limit: int) -> list[ConnectorOrder]:
        stmt = (select(ConnectorOrder).where(ConnectorOrder.connection_id == connection_id,
                                             ConnectorOrder.write_back.in_(("pending", "failed")))
                .limit(limit))
        return list((await self.session.execute(stmt)).scalars())
