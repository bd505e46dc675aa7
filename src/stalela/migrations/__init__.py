"""Alembic, driven from code: ``stalela migrate``, ``make run`` and the test fixtures all call this.

The migrations are a package of their own above every domain, not a part of ``stalela.db``: their
environment needs every domain's tables (``metadata.py``), and every domain's models build on
``stalela.db``, so inside ``db`` they would close a circle with every domain.

Alembic is imported inside the functions: it costs every API worker ~0.1 s at start-up (the restart
time after a crash, docs/operations.md), while only the ``serve`` master migrates and a worker needs
it once, on its first ``/readyz``.
"""
from __future__ import annotations

import asyncio
import weakref
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from stalela.db.engine import create_engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent


def alembic_config(app_role: str = "stalela_app") -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["app_role"] = app_role
    return cfg


@lru_cache
def head_revisions() -> tuple[str, ...]:
    from alembic.script import ScriptDirectory

    # One head on main (tests/architecture/test_migrations.py); branches developed side by side are
    # renumbered into one line, or merged, when they land.
    return tuple(sorted(ScriptDirectory.from_config(alembic_config()).get_heads()))


def revision_text(revisions: tuple[str, ...]) -> str | None:
    """A database's (or the code's) revision as one value for reports (``/readyz``, ``stalela migrate``):
    the single head; None for an empty database; ``a+b`` only for a database an unmerged build migrated."""
    return "+".join(revisions) or None


# Alembic keeps its running environment in module globals (``alembic.context``, ``op``): two upgrades
# interleaved in one event loop (provisioning several dedicated databases at once) would run one database's
# migrations on the other's connection. One upgrade at a time per loop.
_UPGRADING: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]" = weakref.WeakKeyDictionary()


def _one_at_a_time() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _UPGRADING.get(loop)
    if lock is None:
        lock = _UPGRADING[loop] = asyncio.Lock()
    return lock


async def upgrade(url: str, *, app_role: str = "stalela_app", revision: str = "heads") -> None:
    async with _one_at_a_time():
        await _upgrade(url, app_role=app_role, revision=revision)


async def _upgrade(url: str, *, app_role: str, revision: str) -> None:
    # Migrate as the connecting user (the owner), never as the restricted application role.
    from alembic import command

    engine = create_engine(url)
    cfg = alembic_config(app_role)
    try:
        async with engine.begin() as conn:
            def run(sync_conn):  # noqa: ANN001
                if revision == "heads" and _current_heads(sync_conn) == head_revisions():
                    # Already there (every restart): skip the environment, which loads every model.
                    return
                cfg.attributes["connection"] = sync_conn
                command.upgrade(cfg, revision)

            await conn.run_sync(run)
    finally:
        await engine.dispose()


def _current_heads(sync_conn) -> tuple[str, ...]:  # noqa: ANN001
    from alembic.runtime.migration import MigrationContext

    return tuple(sorted(MigrationContext.configure(sync_conn).get_current_heads()))


async def migration_status(engine: AsyncEngine) -> tuple[tuple[str, ...], tuple[str, ...]]:
    async with engine.connect() as conn:
        current = await conn.run_sync(_current_heads)
    return current, head_revisions()
