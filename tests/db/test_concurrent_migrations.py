"""Several databases migrated at once in one process (provisioning dedicated tenants concurrently) each end
at head with their own schema: Alembic's globals must never mix two upgrades."""
from __future__ import annotations

import asyncio

from stalela.db.engine import create_engine
from stalela.migrations import head_revisions, migration_status, upgrade
from tests.support.databases import create_database, drop_database


async def test_concurrent_upgrades_do_not_mix(postgres_server, tmp_path):
    urls = [f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/b.db"]
    if postgres_server.admin_url:
        urls += [create_database(postgres_server.admin_url) for _ in range(3)]
    try:
        await asyncio.gather(*(upgrade(url) for url in urls))
        for url in urls:
            engine = create_engine(url)
            try:
                current, heads = await migration_status(engine)
            finally:
                await engine.dispose()
            assert current == heads == head_revisions(), url
    finally:
        for url in urls[2:]:
            drop_database(postgres_server.admin_url, url)
