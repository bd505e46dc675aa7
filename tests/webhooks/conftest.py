from __future__ import annotations

import asyncio
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from stalela.app import create_app
from stalela.config import Settings
from stalela.migrations import upgrade
from stalela.outbox.dispatcher import Dispatcher
from stalela.outbox.service import enqueue
from stalela.tenancy.context import bind_tenant
from stalela.webhooks import delivery, transport
from stalela.webhooks.clock import use_clock
from stalela.webhooks.models import WebhookMessage
from tests.conftest import BACKENDS, OPERATOR_TOKEN, make_settings
from tests.support.databases import create_database, drop_database
from tests.support.invoices import sample_invoice
from tests.webhooks.support import FakeClock, Receiver


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture
def clock():
    fake = FakeClock()
    with use_clock(fake):
        yield fake


@dataclass
class World:
    app: Any
    client: httpx.AsyncClient
    headers: dict[str, str]
    tenant_id: str
    settings: Settings
    receiver: Receiver
    dispatcher: Dispatcher

    @property
    def db(self):  # noqa: ANN201
        return self.app.state.db

    async def endpoint(self, path: str, **body: Any) -> dict:
        r = await self.client.post("/v1/webhook-endpoints", json={"url": self.receiver.url(path), **body},
                                   headers=self.headers)
        assert r.status_code == 201, r.text
        return r.json()

    async def api(self, method: str, url: str, **kw: Any) -> httpx.Response:
        return await self.client.request(method, url, headers=self.headers, **kw)

    async def messages(self, endpoint: dict, **params: Any) -> list[dict]:
        r = await self.api("GET", f"/v1/webhook-endpoints/{endpoint['id']}/messages", params={"limit": 100, **params})
        assert r.status_code == 200, r.text
        return r.json()["data"]

    async def attempts(self, endpoint: dict, message_id: str) -> list[dict]:
        """Oldest first (the API lists newest first)."""
        r = await self.api("GET", f"/v1/webhook-endpoints/{endpoint['id']}/messages/{message_id}/attempts",
                           params={"limit": 100})
        assert r.status_code == 200, r.text
        return list(reversed(r.json()["data"]))

    async def emit(self, topic: str, payload: dict, count: int = 1) -> list[str]:
        """Outbox events as the other domains write them (in their own transactions)."""
        async with self.db.transaction() as session:
            await bind_tenant(session, self.tenant_id)
            return [enqueue(session, self.tenant_id, topic, dict(payload, n=i)).id for i in range(count)]

    async def seal(self) -> dict:
        outlet = (await self.api("POST", "/v1/outlets", json={"code": f"W{uuid.uuid4().hex[:6]}", "name": "Hook"})).json()
        r = await self.api("POST", "/v1/invoices", json=sample_invoice(outlet["id"]))
        assert r.status_code == 201, r.text
        return r.json()

    async def pump(self, rounds: int = 4, *, dispatcher: Dispatcher | None = None, settle: bool = True) -> None:
        """Run the outbox a few rounds, letting each round's deliveries finish."""
        for _ in range(rounds):
            handled = await (dispatcher or self.dispatcher).run_once()
            if settle:
                await delivery.settle()
            if not handled:
                break

    async def stored(self) -> list[WebhookMessage]:
        async with self.db.transaction(readonly=True) as session:
            await bind_tenant(session, self.tenant_id)
            return list((await session.execute(select(WebhookMessage))).scalars())


def world_settings(url: str, tmp_path, **overrides: Any) -> Settings:
    return make_settings(url, tmp_path, webhooks_allow_private=True, webhooks_timeout_seconds=5,
                         outbox_backoff_base_seconds=0.01, outbox_backoff_cap_seconds=0.05, outbox_poll_seconds=0.05,
                         **overrides)


async def open_world(url: str, tmp_path, receiver: Receiver, **overrides: Any):
    settings = world_settings(url, tmp_path, **overrides)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            r = await client.post("/v1/tenants", json={"name": "Hooks SARL", "tax_id": "H100"},
                                  headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
            assert r.status_code == 201, r.text
            try:
                yield World(app, client, {"Authorization": f"Bearer {r.json()['api_key']}"}, r.json()["tenant"]["id"],
                            settings, receiver, Dispatcher(app.state.db, settings))
            finally:
                await delivery.settle(10)
                await transport.close_pools()


@pytest.fixture
async def world(hooks_database_url, tmp_path, receiver, clock):
    async for w in open_world(hooks_database_url, tmp_path, receiver):
        yield w


# --- fresh databases, fast: copies of one migrated template per backend --------------------------

_dropper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drop-test-db")


@pytest.fixture(scope="session", autouse=True)
def _drop_databases_before_leaving():
    yield
    _dropper.shutdown(wait=True)


@pytest.fixture(scope="session")
def _hooks_sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hooks-template") / "template.db"
    asyncio.run(upgrade(f"sqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def _hooks_pg_template(postgres_server):
    if not postgres_server.admin_url:
        pytest.skip(postgres_server.reason)
    url = create_database(postgres_server.admin_url)
    asyncio.run(upgrade(url))
    yield make_url(url).database
    drop_database(postgres_server.admin_url, url)


@pytest.fixture(params=BACKENDS)
def hooks_database_url(request, tmp_path, postgres_server) -> str:
    """Like ``fresh_database_url`` (a database of its own, its outbox ours alone), in a fraction of
    the time: the migrated schema is copied instead of migrated again."""
    if request.param == "sqlite":
        path = tmp_path / "hooks.db"
        shutil.copyfile(request.getfixturevalue("_hooks_sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    template = request.getfixturevalue("_hooks_pg_template")
    name = f"stalela_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    url = make_url(postgres_server.admin_url).set(database=name).render_as_string(hide_password=False)
    yield url
    _dropper.submit(drop_database, postgres_server.admin_url, url)  # in the background: it takes a while
