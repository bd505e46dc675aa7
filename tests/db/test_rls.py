"""Row-level security is a real second wall on PostgreSQL: queries without the tenant filter see nothing."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from stalela.db.engine import normalize_database_url
from stalela.tenancy.context import bind_tenant
from tests.controlplane.conftest import tier_app, tier_client, tier_settings  # noqa: F401 (fixtures)
from tests.support.walk import database_of, make_tenant


@pytest.fixture
def database_url(_postgres_url):
    return _postgres_url


@pytest.mark.parametrize("tier", ["shared", "dedicated"])
async def test_service_role_is_not_superuser_and_rls_forced(tier_app, tier_client, operator_headers, tier):
    """In the shared database and in a dedicated tenant's own (its migrations protect it the same way)."""
    tenant, _ = await make_tenant(tier_client, tier_app, operator_headers, tier, "RLS SARL", "R0000001")
    db = await database_of(tier_client, tier_app, operator_headers, tenant["id"])
    async with db.transaction() as s:
        row = (await s.execute(text("SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"))).one()
        assert row == ("stalela_app", False, False)
        forced = (await s.execute(text(
            "SELECT relname FROM pg_class WHERE relname IN ('tenants','outlets','api_keys') "
            "AND relrowsecurity AND relforcerowsecurity"))).scalars().all()
        assert sorted(forced) == ["api_keys", "outlets", "tenants"]
        # Every table that holds tenant rows (a tenant_id column), not only these three.
        unprotected = (await s.execute(text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped "
            "WHERE n.nspname = 'public' AND c.relkind = 'r' "
            "AND NOT (c.relrowsecurity AND c.relforcerowsecurity)"))).scalars().all()
        assert unprotected == [], f"tenant tables without forced row-level security: {unprotected}"


# One tenant of each tier too: bound to either, raw SQL reads only that tenant's rows, wherever they are.
@pytest.mark.parametrize("a_tier,b_tier", [("shared", "shared"), ("dedicated", "shared"), ("shared", "dedicated")])
async def test_unfiltered_sql_sees_only_the_bound_tenant(tier_app, tier_client, operator_headers, a_tier, b_tier):
    app, client, db = tier_app, tier_client, tier_app.state.db
    a, a_headers = await make_tenant(client, app, operator_headers, a_tier, "A", "A1")
    b, b_headers = await make_tenant(client, app, operator_headers, b_tier, "B", "B1")
    for headers, code in ((a_headers, "AO"), (b_headers, "BO")):
        assert (await client.post("/v1/outlets", json={"code": code, "name": code}, headers=headers)).status_code == 201

    raw = "SELECT tenant_id, code FROM outlets WHERE code IN ('AO', 'BO')"  # deliberately no tenant filter
    for plane in {db, await database_of(client, app, operator_headers, a["id"]),
                  await database_of(client, app, operator_headers, b["id"])}:
        async with plane.transaction() as s:
            assert (await s.execute(text(raw))).all() == []  # no tenant bound: nothing at all
            assert (await s.execute(text("SELECT count(*) FROM api_keys"), bind_arguments={"bind": s.sync_session.bind})
                    ).scalar_one() == 0
    for tenant in (a, b):
        async with db.transaction() as s:
            await bind_tenant(s, tenant["id"])
            rows = (await s.execute(text(raw))).all()
            assert {r.tenant_id for r in rows} == {tenant["id"]}
    async with db.transaction() as s:
        await bind_tenant(s, a["id"])
        # Writing a row for another tenant is refused by the policy's WITH CHECK too.
        with pytest.raises(Exception, match="row-level security"):
            await s.execute(text(
                "INSERT INTO outlets (tenant_id, id, code, name, timezone, status, created_at, updated_at) "
                "VALUES (:t, 'out_x', 'EVIL', 'x', 'UTC', 'active', now(), now())"), {"t": b["id"]})


def test_url_normalisation_picks_async_drivers():
    assert normalize_database_url("postgresql://u@h:5432/db") == "postgresql+asyncpg://u@h:5432/db"
    assert normalize_database_url("postgres://u:p@h/db") == "postgresql+asyncpg://u:p@h/db"
    assert normalize_database_url("sqlite:///var/x.db") == "sqlite+aiosqlite:///var/x.db"
    with pytest.raises(Exception, match="unsupported"):
        normalize_database_url("mysql://u@h/db")
