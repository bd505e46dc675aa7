"""Repository base: the shared reads every domain repository needs.

Tenant filtering is not done here by hand: sessions bound with ``tenancy.context.bind_tenant``
get it added to every ORM statement automatically.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.errors import BadRequest

M = TypeVar("M")


@lru_cache(maxsize=None)
def _by_id(model: type) -> Select[Any]:
    # Built once per model: building a statement (and its cache key) costs as much as running a small one.
    return select(model).where(model.id == bindparam("id_"))


class Repository(Generic[M]):
    model: type[M]

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, id_: str) -> M | None:
        return (await self.session.execute(_by_id(self.model), {"id_": id_})).scalar_one_or_none()

    async def get_for_update(self, id_: str) -> M | None:
        stmt = select(self.model).where(self.model.id == id_).with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def add(self, obj: M) -> M:
        self.session.add(obj)
        await self.session.flush()
        return obj

    async def page(self, stmt: Select[Any] | None, *, limit: int, starting_after: str | None,
                   scope: Select[Any] | None = None) -> tuple[list[M], bool]:
        """Newest first by id (ids are time-ordered); fetch one extra row to know ``has_more``.

        ``starting_after`` must name a row of ``scope`` (default: ``stmt`` itself). A list filtered on a
        state that changes (a status, a deletion) passes its unfiltered collection as ``scope``, so that a
        cursor whose row changed state since the previous page still pages on."""
        stmt = stmt if stmt is not None else select(self.model)
        if starting_after:
            await check_cursor(self.session, stmt if scope is None else scope, self.model.id, starting_after)
            stmt = stmt.where(self.model.id < starting_after)
        stmt = stmt.order_by(self.model.id.desc()).limit(limit + 1)
        rows = list((await self.session.execute(stmt)).scalars())
        return rows[:limit], len(rows) > limit


async def check_cursor(session: AsyncSession, scope: Select[Any], id_column: Any, starting_after: str) -> None:
    """Refuse a cursor that names no row of ``scope``. An unknown id, another tenant's (the tenant filter
    applies here too) or another list's would otherwise page from an arbitrary place, or from the start
    forever: ``400 invalid_cursor``."""
    found = scope.with_only_columns(id_column).where(id_column == starting_after).limit(1)
    if (await session.execute(found)).first() is None:
        raise BadRequest("starting_after names no object of this list: use the last id of the previous page",
                         code="invalid_cursor", field="starting_after")
