"""Shared fixtures: databases (SQLite and PostgreSQL), the app in-process, and a live server."""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import AsyncIterator

import httpx
import pytest

from stalela.config import Settings
from stalela.migrations import upgrade
from stalela.db.session import Database
from stalela.fiscal.signing.pkcs11 import Pkcs11KeyBackend
from tests.support.databases import create_database, drop_database, find_postgres
from tests.support.softhsm import (
    SKIP_REASON,
    SoftHsmToken,
    find_softhsm_library,
    init_softhsm_token,
)

OPERATOR_TOKEN = "test-operator-token"
# Tests share one database per backend, and platform-wide secrets in it (access-token keys) are
# encrypted under the master key: every test app and test server uses this one, like one deployment.
MASTER_KEY = "6d" * 32
BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def postgres_server():
    server = find_postgres()
    yield server
    if server.stop:
        server.stop()


@pytest.fixture(scope="session")
def _sqlite_url(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'stalela.db'}"
    asyncio.run(upgrade(url))
    return url


@pytest.fixture(scope="session")
def _postgres_url(postgres_server) -> str:
    if not postgres_server.admin_url:
        pytest.skip(postgres_server.reason)
    url = create_database(postgres_server.admin_url)
    asyncio.run(upgrade(url))
    yield url
    drop_database(postgres_server.admin_url, url)


@pytest.fixture(params=BACKENDS)
def fresh_database_url(request, tmp_path, postgres_server) -> str:
    """A database of its own, for tests that consume queue-like state shared by all tenants."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
        asyncio.run(upgrade(url))
        yield url
        return
    if not postgres_server.admin_url:
        pytest.skip(postgres_server.reason)
    url = create_database(postgres_server.admin_url)
    asyncio.run(upgrade(url))
    yield url
    drop_database(postgres_server.admin_url, url)


@pytest.fixture(params=BACKENDS)
def database_url(request) -> str:
    """A migrated database on each backend; tests isolate themselves by creating their own tenants."""
    return request.getfixturevalue(f"_{request.param}_url")


def make_settings(database_url: str, tmp_path, **overrides) -> Settings:
    values = dict(
        database_url=database_url,
        data_dir=tmp_path,
        operator_token=OPERATOR_TOKEN,
        demo=False,
        master_key=MASTER_KEY,
        log_level="WARNING",
        # Background loops would race the tests that drive jobs step by step; e2e servers keep them.
        inprocess_workers=False,
        # Every in-process client calls from one address (127.0.0.1): the per-IP limit of the public routes
        # would throttle whole test modules. Its own tests (tests/auth/test_limits.py) set it low.
        public_rate_limit_burst=1_000_000,
    )
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(database_url, tmp_path) -> Settings:
    return make_settings(database_url, tmp_path)


@pytest.fixture
async def db(settings) -> AsyncIterator[Database]:
    database = Database.from_settings(settings)
    yield database
    await database.dispose()


@pytest.fixture
async def app(settings):
    from stalela.app import create_app

    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@pytest.fixture
def operator_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


@pytest.fixture
def new_tenant(client, operator_headers):
    """Factory: create a tenant through the API, return (tenant, headers with its API key)."""

    async def make(name: str = "Tenant SARL", tax_id: str = "A0000001B"):
        r = await client.post("/v1/tenants", json={"name": name, "tax_id": tax_id, "jurisdiction": "CD"},
                              headers=operator_headers)
        assert r.status_code == 201, r.text
        body = r.json()
        return body["tenant"], {"Authorization": f"Bearer {body['api_key']}"}

    return make



@pytest.fixture(scope="session")
def softhsm_token(tmp_path_factory: pytest.TempPathFactory) -> SoftHsmToken:
    # One token per test session: SoftHSM2 reads its configuration once, when the process first
    # loads the library, so a second token in another directory would be invisible.
    if find_softhsm_library() is None:
        pytest.skip(SKIP_REASON)
    try:
        return init_softhsm_token(tmp_path_factory.mktemp("softhsm"))
    except RuntimeError as exc:  # the library without softhsm2-util
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def pkcs11_backend(softhsm_token: SoftHsmToken) -> Iterator[Pkcs11KeyBackend]:
    backend = Pkcs11KeyBackend(
        softhsm_token.library_path, softhsm_token.token_label, softhsm_token.pin
    )
    yield backend
    backend.close()
