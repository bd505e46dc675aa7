"""Fixtures of the control plane's tests: an app whose dedicated tenants get databases of their own on the
test PostgreSQL server (or SQLite files), all dropped afterwards; cheap Argon2 and a factory of operators
made through the API."""
from __future__ import annotations

from typing import AsyncIterator

import secrets

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from stalela.db.base import utcnow

from stalela.controlplane import placement, provisioning
from stalela.db.session import Database
from stalela.migrations import upgrade
from tests.conftest import make_settings
from tests.support.invoices import sample_invoice

provisioning.migrator = upgrade  # what the composition root (workers) installs


def dedicated_template(database_url: str, tmp_path) -> str:
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path}/tenants/{{tenant}}.db"
    return make_url(database_url).set(database="DBNAME").render_as_string(hide_password=False).replace(
        "DBNAME", "{tenant}")


@pytest.fixture
def tier_settings(database_url, tmp_path):
    return make_settings(database_url, tmp_path,
                         dedicated_database_url_template=dedicated_template(database_url, tmp_path))


@pytest.fixture
async def tier_app(tier_settings):
    from stalela.app import create_app

    application = create_app(tier_settings)
    started = utcnow()
    async with application.router.lifespan_context(application):
        yield application
        # Drop every dedicated database the test made, opened or not (moves' sources and targets too):
        # their names carry the tenant ids, so no other test's can match.
        db: Database = application.state.db
        places = set(db.fleet.open_databases())
        async with db.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SELECT set_config('stalela.platform', 'on', false)"))
            for sql in ("SELECT placement FROM tenants WHERE created_at >= :s",
                        "SELECT source FROM tenant_moves WHERE created_at >= :s",
                        "SELECT target FROM tenant_moves WHERE created_at >= :s"):
                places |= {p for (p,) in await conn.execute(text(sql), {"s": started}) if p}
        await db.fleet.dispose()
        for p in places:
            await placement.drop_database(db.fleet.url_of(p))


@pytest.fixture
async def tier_client(tier_app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=tier_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def provisioned(client, app, operator_headers, **body) -> tuple[dict, dict]:
    """A dedicated tenant, provisioned (the job run here as the worker would), with an outlet."""
    payload = {"name": "Dédié SARL", "tax_id": "D0000001B", "jurisdiction": "CD", "tier": "dedicated", **body}
    r = await client.post("/v1/tenants", json=payload, headers=operator_headers)
    assert r.status_code == 202, r.text
    tenant = r.json()["tenant"]
    assert tenant["status"] == "provisioning" and tenant["tier"] == "dedicated"
    await provisioning.run(app.state.db, app.state.settings, tenant["id"])
    headers = {"Authorization": f"Bearer {r.json()['api_key']}"}
    r = await client.post("/v1/outlets", json={"code": "MAIN", "name": "Main"}, headers=headers)
    assert r.status_code == 201, r.text
    return {**tenant, "outlet": r.json()["id"]}, headers


async def shared(client, operator_headers, **body) -> tuple[dict, dict]:
    payload = {"name": "Partagé SARL", "tax_id": "S0000001B", "jurisdiction": "CD", **body}
    r = await client.post("/v1/tenants", json=payload, headers=operator_headers)
    assert r.status_code == 201, r.text
    headers = {"Authorization": f"Bearer {r.json()['api_key']}"}
    r2 = await client.post("/v1/outlets", json={"code": "MAIN", "name": "Main"}, headers=headers)
    assert r2.status_code == 201, r2.text
    return {**r.json()["tenant"], "outlet": r2.json()["id"]}, headers


async def seal(client, tenant: dict, headers: dict, **overrides) -> dict:
    r = await client.post("/v1/invoices", json=sample_invoice(tenant["outlet"], **overrides), headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


PASSWORD = "operator passphrase 2026"


@pytest.fixture
def settings(database_url, tmp_path):
    return make_settings(database_url, tmp_path, argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1)


def unique_email(who: str) -> str:
    """Tests share one database per backend: every operator gets an address of its own."""
    return f"{who}.{secrets.token_hex(5)}@ops.stalela.test"


@pytest.fixture
def new_operator(client, operator_headers):
    async def make(role: str = "platform_admin", *, who: str = "op", password: str | None = PASSWORD) -> dict:
        body = {"email": unique_email(who), "name": who.title(), "role": role}
        if password is not None:
            body["password"] = password
        r = await client.post("/v1/operators", json=body, headers=operator_headers)
        assert r.status_code == 201, r.text
        return r.json()

    return make
