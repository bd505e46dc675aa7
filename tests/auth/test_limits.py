"""Rate limits per tenant (operator-set numbers instead of the defaults) and per client IP on the
unauthenticated routes, on SQLite and PostgreSQL, in process and through Redis."""
from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select, update
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from stalela.accounts import service as accounts
from stalela.audit.models import AuditEntry
from stalela.auth.throttle import Limiter
from stalela.errors import ValidationFailed
from stalela.tenancy.context import bind_platform, bind_tenant
from stalela.tenancy.models import Tenant
from tests.auth.test_users import PASSWORD, make_user
from tests.conftest import make_settings
from tests.support.services import listening

REDIS = "redis://127.0.0.1:6379/15"


@pytest.fixture(params=["process", "redis"])
def settings(request, database_url, tmp_path):
    extra = {}
    if request.param == "redis":
        if not listening(6379):
            pytest.skip("no Redis on 127.0.0.1:6379")
        extra["redis_url"] = REDIS
    # A slow refill: a test's requests never earn a token back while it counts them.
    return make_settings(database_url, tmp_path, argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1,
                         rate_limit_per_second=0.01, rate_limit_burst=8, public_rate_limit_per_second=0.01,
                         public_rate_limit_burst=4, **extra)


async def set_limits(app, tenant_id: str, per_second, burst) -> Tenant:  # noqa: ANN001
    async with app.state.db.transaction() as session:
        await bind_platform(session)
        return await accounts.set_tenant_limits(session, tenant_id, per_second, burst)


async def statuses(client, key, n: int) -> list[httpx.Response]:  # noqa: ANN001
    return [await client.get("/v1/outlets", headers=key) for _ in range(n)]


async def test_a_tenant_with_its_own_limit_trips_at_its_burst_and_another_keeps_the_default(app, client, new_tenant):
    limited, limited_key = await new_tenant("Limited SARL", "LIM1")
    other, other_key = await new_tenant("Other SARL", "OTH1")
    stored = await set_limits(app, limited["id"], Decimal("0.01"), 3)
    assert stored.rate_limit_per_second == Decimal("0.010") and stored.rate_limit_burst == 3

    answers = await statuses(client, limited_key, 4)
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert {r.headers["ratelimit-limit"] for r in answers} == {"3"}  # the tenant's numbers, not the default 8
    assert answers[0].headers["ratelimit-policy"] == "3;w=300"  # 3 at once, refilled in 300 s at 0.01/s
    assert answers[-1].json()["code"] == "rate_limited" and int(answers[-1].headers["retry-after"]) >= 1

    answers = await statuses(client, other_key, 9)
    assert [r.status_code for r in answers] == [200] * 8 + [429]
    assert answers[0].headers["ratelimit-limit"] == "8"

    # Back to the defaults: the same bucket (its tokens spent) now holds 8.
    await set_limits(app, limited["id"], None, None)
    async with app.state.db.transaction() as session:
        await bind_platform(session)
        row = await session.get(Tenant, limited["id"])
        assert (row.rate_limit_per_second, row.rate_limit_burst) == (None, None)
    assert (await client.get("/v1/outlets", headers=limited_key)).headers["ratelimit-limit"] == "8"


async def test_a_users_requests_get_the_tenants_limit_too(app, client, new_tenant):
    tenant, key = await new_tenant("Users SARL", "USR1")
    await make_user(client, key, f"acc.{tenant['id']}@x.cd", "accountant")
    async with _proxied(app) as proxied:  # an address of its own: 127.0.0.1's public bucket is everyone's
        token = (await proxied.post("/v1/auth/login", json={"email": f"acc.{tenant['id']}@x.cd", "password": PASSWORD},
                                    headers={"X-Forwarded-For": address()})).json()["access_token"]
    await set_limits(app, tenant["id"], "0.5", 2)  # users are looked up on every request: at once
    answers = await statuses(client, {"Authorization": f"Bearer {token}"}, 3)
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert answers[0].headers["ratelimit-limit"] == "2" and answers[0].headers["ratelimit-policy"] == "2;w=4"


async def test_a_change_made_elsewhere_reaches_cached_keys_within_the_auth_cache_time(app, client, new_tenant):
    tenant, key = await new_tenant("Cached SARL", "CAC1")
    ttl = app.state.settings.auth_cache_seconds
    assert ttl > 0
    for _ in range(2):  # the first request touches the key, the second caches it
        assert (await client.get("/v1/outlets", headers=key)).headers["ratelimit-limit"] == "8"
    # As another API process would (its own cache cleared, not this one's): the row alone changes.
    async with app.state.db.transaction() as session:
        await bind_platform(session)
        await session.execute(update(Tenant).where(Tenant.id == tenant["id"]).values(rate_limit_burst=50))
    assert (await client.get("/v1/outlets", headers=key)).headers["ratelimit-limit"] == "8"  # still cached
    await asyncio.sleep(ttl + 0.2)
    assert (await client.get("/v1/outlets", headers=key)).headers["ratelimit-limit"] == "50"


async def test_limits_are_checked_recorded_in_the_audit_log_and_stored_as_decimals(app, client, new_tenant):
    tenant, _ = await new_tenant("Audit SARL", "AUD1")
    bad = [(Decimal(0), 5, "rate_limit_per_second"), (Decimal("-1"), 5, "rate_limit_per_second"),
           (Decimal("100000.001"), 5, "rate_limit_per_second"), (Decimal("1.0005"), 5, "rate_limit_per_second"),
           (Decimal("NaN"), 5, "rate_limit_per_second"), ("ten", 5, "rate_limit_per_second"),
           (True, 5, "rate_limit_per_second"), (Decimal(1), 0, "rate_limit_burst"),
           (Decimal(1), 1_000_001, "rate_limit_burst"), (Decimal(1), 2.5, "rate_limit_burst")]
    for rate, burst, field in bad:
        with pytest.raises(ValidationFailed) as caught:
            await set_limits(app, tenant["id"], rate, burst)
        assert (caught.value.field, caught.value.code) == (field, "rate_limit_invalid"), (rate, burst)
    stored = await set_limits(app, tenant["id"], Decimal("100000"), 1_000_000)  # the bounds themselves
    await set_limits(app, tenant["id"], Decimal("100000"), 1_000_000)  # no change: no second entry
    stored = await set_limits(app, tenant["id"], 0.1, 1)  # a JSON number arrives as a float: 0.1 exactly
    assert stored.rate_limit_per_second == Decimal("0.1")
    async with app.state.db.transaction() as session:
        await bind_platform(session)
        row = await session.get(Tenant, tenant["id"])
        assert isinstance(row.rate_limit_per_second, Decimal) and row.rate_limit_per_second == Decimal("0.1")
        await bind_tenant(session, tenant["id"])
        entries = (await session.execute(select(AuditEntry).where(AuditEntry.tenant_id == tenant["id"],
                                                                  AuditEntry.action == "tenant.rate_limit_set")
                                         .order_by(AuditEntry.seq))).scalars().all()
    assert [json.loads(e.details) for e in entries] == [
        {"rate_limit_per_second": "100000", "rate_limit_burst": 1_000_000,
         "previous": {"rate_limit_per_second": None, "rate_limit_burst": None}},
        {"rate_limit_per_second": "0.1", "rate_limit_burst": 1,
         "previous": {"rate_limit_per_second": "100000", "rate_limit_burst": 1_000_000}},
    ]
    assert entries[0].actor == "operator"


# --- per client IP ---------------------------------------------------------------------------------


def _proxied(app) -> httpx.AsyncClient:  # noqa: ANN001
    """Behind a trusted proxy (loopback, as ``stalela serve`` trusts): X-Forwarded-For is the client."""
    transport = httpx.ASGITransport(app=ProxyHeadersMiddleware(app, "127.0.0.1"), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


def address() -> str:
    """A documentation address of its own: buckets in Redis outlive a test."""
    return f"2001:db8::{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"


PUBLIC = [
    # An email of its own: Redis keeps failed sign-ins per email (the login throttle) across tests.
    ("POST", "/v1/auth/login", {"json": lambda: {"email": f"nobody.{uuid.uuid4().hex}@x.cd",
                                                       "password": "wrong"}}),
    ("POST", "/v1/auth/refresh", {"json": {"refresh_token": "nope"}}),
    ("POST", "/v1/users/accept", {"json": {"token": "nope", "password": PASSWORD}}),
    ("GET", "/v1/auth/jwks.json", {}),
    ("GET", "/.well-known/jwks.json", {}),
    ("GET", "/v1/keys/key_nope", {}),
    ("GET", "/verify/inv_nope", {"headers": {"Accept": "application/json"}}),
    ("GET", "/verify/z/zr_nope?h=" + "0" * 64, {"headers": {"Accept": "application/json"}}),
]


@pytest.mark.parametrize("method, path, kw", PUBLIC, ids=[p for _, p, _ in PUBLIC])
async def test_a_public_route_limits_each_client_address(app, method, path, kw):
    one, two = address(), address()
    kw = {k: v() if callable(v) else v for k, v in kw.items()}
    async with _proxied(app) as client:
        answers = [await client.request(method, path, headers={"X-Forwarded-For": one, **kw.get("headers", {})},
                                        **{k: v for k, v in kw.items() if k != "headers"}) for _ in range(5)]
        assert [r.status_code == 429 for r in answers] == [False] * 4 + [True], [r.status_code for r in answers]
        refused = answers[-1]
        assert [r.json().get("code") for r in answers[:4]] != ["rate_limited"] * 4
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["code"] == "rate_limited" and int(refused.headers["retry-after"]) >= 1
        assert refused.headers["ratelimit-limit"] == "4" and refused.headers["ratelimit-remaining"] == "0"
        assert answers[0].headers["ratelimit-remaining"] == "3"
        other = await client.request(method, path, headers={"X-Forwarded-For": two, **kw.get("headers", {})},
                                     **{k: v for k, v in kw.items() if k != "headers"})
        assert other.status_code != 429


@pytest.mark.parametrize("path", ["/app/login", "/app/accept", "/ops/login"])
async def test_the_consoles_sign_in_pages_answer_an_html_429(app, path):
    one = address()
    async with _proxied(app) as client:
        answers = [await client.get(path, headers={"X-Forwarded-For": one}) for _ in range(5)]
        assert [r.status_code for r in answers] == [200] * 4 + [429]
        assert answers[-1].headers["content-type"].startswith("text/html") and "Too many requests" in answers[-1].text
        assert int(answers[-1].headers["retry-after"]) >= 1
        posted = await client.post(path, content="", headers={"X-Forwarded-For": one,
                                                              "Content-Type": "application/x-www-form-urlencoded"})
        assert posted.status_code == 429  # the form too, before any work
        assert (await client.get(path, headers={"X-Forwarded-For": address()})).status_code == 200


async def test_authenticated_routes_are_not_counted_per_address(app, client, new_tenant):
    _, key = await new_tenant("Busy SARL", "BSY1")
    busy = address()
    async with _proxied(app) as proxied:
        for _ in range(6):  # beyond the per-IP burst of 4, within the key's 8
            assert (await proxied.get("/v1/outlets", headers={**key, "X-Forwarded-For": busy})
                    ).status_code == 200


@pytest.mark.skipif(not listening(6379), reason="no Redis on 127.0.0.1:6379")
async def test_the_redis_bucket_takes_each_callers_numbers(tmp_path, database_url):
    limiter = Limiter(make_settings(database_url, tmp_path, redis_url=REDIS, rate_limit_per_second=0.01,
                                    rate_limit_burst=5))
    try:
        key = f"test:{uuid.uuid4().hex}"
        taken = [await limiter.take(key, 0.01, 2) for _ in range(3)]
        assert [d.allowed for d in taken] == [True, True, False]
        default = f"test:{uuid.uuid4().hex}"
        assert [(await limiter.take(default)).allowed for _ in range(6)] == [True] * 5 + [False]
    finally:
        await limiter.close()


async def test_refilled_buckets_are_forgotten_in_process(tmp_path, database_url):
    limiter = Limiter(make_settings(database_url, tmp_path))
    for n in range(3):
        await limiter.take(f"fast:{n}", 1000.0, 1)  # refilled a millisecond later
    await limiter.take("slow", 0.001, 5)
    await asyncio.sleep(0.01)
    limiter._prune_at = 1  # noqa: SLF001 - the bound, made small
    await limiter.take("trigger", 1000.0, 1)
    assert "slow" in limiter._buckets and not any(k.startswith("fast:") for k in limiter._buckets)  # noqa: SLF001
