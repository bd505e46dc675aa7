"""A database or Redis outage is a 503 the client can retry, not a 500 "bug": ``database_unavailable``
(or ``cache_unavailable``) with Retry-After, as problem+json, one warning line per request and no
stack trace; the service recovers by itself once the database is back (docs/operations.md).

PostgreSQL outages are made on a database of the test's own (read-only by default, refusing
connections, backends terminated), never by stopping the shared server."""
from __future__ import annotations

import socket

import httpx
import psycopg
import pytest

from tests.conftest import OPERATOR_TOKEN, make_settings
from tests.support.invoices import sample_invoice
from tests.support.server import start_server

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def unavailable(r: httpx.Response, code: str = "database_unavailable") -> None:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == code
    assert int(r.headers["retry-after"]) >= 1


def setup_tenant(c: httpx.Client) -> tuple[dict, str]:
    r = c.post("/v1/tenants", json={"name": "Outage SARL", "tax_id": "O1", "jurisdiction": "CD"}, headers=OPERATOR)
    assert r.status_code == 201, r.text
    key = {"Authorization": f"Bearer {r.json()['api_key']}"}
    outlet = c.post("/v1/outlets", json={"code": "O1", "name": "Outage"}, headers=key).json()
    return key, outlet["id"]


@pytest.fixture
def own_pg(fresh_database_url, postgres_server):
    """The test's own PostgreSQL database, and a way to run admin statements against it."""
    name = fresh_database_url.rsplit("/", 1)[1]

    def admin(*statements: str) -> None:
        with psycopg.connect(postgres_server.admin_url, autocommit=True) as conn:
            for sql in statements:
                conn.execute(sql.format(db=f'"{name}"', name=name))

    yield fresh_database_url, admin
    admin("ALTER DATABASE {db} ALLOW_CONNECTIONS true")  # else the fixture cannot drop it


TERMINATE = ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
             "WHERE datname = '{name}' AND pid <> pg_backend_pid()")


@pytest.mark.parametrize("fresh_database_url", ["postgres"], indirect=True)
def test_postgres_read_only_then_refusing_connections_answers_503_and_recovers_alone(own_pg, tmp_path):
    url, admin = own_pg
    server = start_server({"STALELA_DATABASE_URL": url, "STALELA_OPERATOR_TOKEN": OPERATOR_TOKEN,
                           "STALELA_INPROCESS_WORKERS": "false", "STALELA_BACKGROUND_WORKERS": "0"}, tmp_path / "var", workers=1)
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            key, outlet = setup_tenant(c)
            assert c.post("/v1/invoices", json=sample_invoice(outlet), headers=key).status_code == 201

            # Read-only (what a demoted primary or a full disk looks like): writes refuse, reads go on.
            admin("ALTER DATABASE {db} SET default_transaction_read_only = on", TERMINATE)
            for _ in range(3):
                unavailable(c.post("/v1/invoices", json=sample_invoice(outlet), headers=key))
            assert c.get("/v1/outlets", headers=key).status_code == 200
            # Writable again, without terminating anything: the pool must not keep its read-only sessions.
            # At most one more refusal: the first write on such a session drops it and the whole pool.
            admin("ALTER DATABASE {db} RESET default_transaction_read_only")
            statuses = [c.post("/v1/invoices", json=sample_invoice(outlet), headers=key).status_code
                        for _ in range(3)]
            assert statuses in ([201, 201, 201], [503, 201, 201]), statuses

            # Unreachable: every connection cut and new ones refused.
            admin("ALTER DATABASE {db} ALLOW_CONNECTIONS false", TERMINATE)
            unavailable(c.get("/v1/outlets", headers=key))
            unavailable(c.post("/v1/invoices", json=sample_invoice(outlet), headers=key))
            assert c.get("/readyz").status_code == 503
            admin("ALTER DATABASE {db} ALLOW_CONNECTIONS true")
            r = c.post("/v1/invoices", json=sample_invoice(outlet), headers=key)
            assert r.status_code == 201, r.text
            assert r.json()["counter"] == statuses.count(201) + 2  # the refused ones consumed no number
            assert c.get("/readyz").status_code == 200
        log = server.log_path.read_text()
        assert log.count('"database_unavailable"') >= 5
        assert "Traceback" not in log
    finally:
        server.stop()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_sqlite_that_cannot_be_written_answers_503(database_url, tmp_path, client, new_tenant):
    from stalela.app import create_app

    _, key = await new_tenant()
    outlet = (await client.post("/v1/outlets", json={"code": "S1", "name": "S"}, headers=key)).json()["id"]
    path = database_url.split("///", 1)[1]
    # The same file opened read-only: SQLite answers SQLITE_READONLY to every write.
    app = create_app(make_settings(f"sqlite:///file:{path}?mode=ro&uri=true", tmp_path))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as ro:
            unavailable(await ro.post("/v1/invoices", json=sample_invoice(outlet), headers=key))
            assert (await ro.get("/v1/outlets", headers=key)).status_code == 200


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_redis_away_login_refuses_and_rate_limits_fall_back_to_the_process(database_url, tmp_path, new_tenant,
                                                                                 client):
    from stalela.app import create_app

    _, key = await new_tenant()
    settings = make_settings(database_url, tmp_path, redis_url=f"redis://127.0.0.1:{_closed_port()}/0")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            unavailable(await c.post("/v1/auth/login", json={"email": "a@b.cd", "password": "x" * 12}),
                        "cache_unavailable")
            r = await c.get("/v1/outlets", headers=key)
            assert r.status_code == 200, r.text
            assert r.headers["ratelimit-limit"]


async def test_a_refused_connection_is_an_outage_and_a_bad_query_is_not(db):
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from stalela.db.session import Database
    from stalela.errors import DatabaseUnavailable

    # Nothing listens there: asyncpg lets the socket's ConnectionRefusedError through, unwrapped.
    nowhere = Database(f"postgresql://postgres@127.0.0.1:{_closed_port()}/none", retry_after=7)
    try:
        with pytest.raises(DatabaseUnavailable) as refused:
            async with nowhere.transaction(readonly=True) as session:
                await session.execute(text("SELECT 1"))
        assert refused.value.headers["Retry-After"] == "7"
    finally:
        await nowhere.dispose()
    # A bug stays a bug (500, with its traceback): retrying it would never help.
    with pytest.raises(DBAPIError):
        async with db.transaction(readonly=True) as session:
            await session.execute(text("SELECT no_such_column FROM tenants"))


async def test_a_deadlock_is_a_retry_not_a_bug(db, database_url):
    """PostgreSQL rolls a deadlocked transaction back whole: "retry in a moment" (503), never a 500."""
    import asyncio

    from sqlalchemy import text

    from stalela.errors import DatabaseUnavailable

    if database_url.startswith("sqlite"):
        pytest.skip("a deadlock between two transactions is PostgreSQL's (SQLite has one writer: SQLITE_BUSY)")
    both_hold_one = asyncio.Barrier(2)

    async def take(first: int, second: int) -> str:
        try:
            async with db.transaction() as session:
                await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": first})
                await both_hold_one.wait()
                await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": second})
            return "committed"
        except DatabaseUnavailable as exc:
            assert exc.status == 503 and exc.headers.get("Retry-After")
            return "retry"

    outcomes = sorted(await asyncio.gather(take(9_100_001, 9_100_002), take(9_100_002, 9_100_001)))
    assert outcomes == ["committed", "retry"]
