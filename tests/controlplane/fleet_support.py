"""An app of the dedicated tier on a database of its own (the background loops consume queue-like state of
every tenant, so they never run against the database the other tests share)."""
from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable

import httpx

from stalela.app import create_app
from stalela.controlplane import placement
from stalela.db.session import Database
from tests.conftest import make_settings
from tests.controlplane.conftest import dedicated_template


@asynccontextmanager
async def tier_world(url: str, tmp_path, **overrides: Any) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    settings = make_settings(url, tmp_path, dedicated_database_url_template=dedicated_template(url, tmp_path),
                             webhooks_allow_private=True, outbox_poll_seconds=0.05, **overrides)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield app, client
        finally:
            await drop_dedicated(app.state.db)


async def drop_dedicated(db: Database) -> None:
    """Every dedicated database the registry knows (their names carry unique tenant ids)."""
    from sqlalchemy import text

    async with db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT set_config('stalela.platform', 'on', false)"))
        placements = list((await conn.execute(text("SELECT placement FROM tenants WHERE placement IS NOT NULL")))
                          .scalars())
    await db.fleet.dispose()
    for p in placements:
        await placement.drop_database(db.fleet.url_of(p))


async def eventually(check: Callable[[], Any], timeout: float = 15.0, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s")
        await asyncio.sleep(every)
