"""Fixtures of the console tests: a tenant with an outlet and users, and a signed-in browser-like client."""
from __future__ import annotations

import re
from urllib.parse import urlencode

import httpx
import pytest

from stalela.auth import users
from stalela.auth.principal import Principal
from stalela.dashboard.repository import DashboardRepository
from stalela.tenancy.context import bind_tenant
from tests.auth.test_users import PASSWORD
from tests.conftest import make_settings


@pytest.fixture
def settings(database_url, tmp_path):
    # Cheap Argon2 in tests; webhooks may target loopback (nothing listens: deliveries fail, as wanted).
    return make_settings(database_url, tmp_path, argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1,
                         rate_limit_burst=10_000, webhooks_allow_private=True)


async def set_tenant_language(app, tenant_id: str, locale: str | None) -> None:  # noqa: ANN001
    async with app.state.db.transaction() as session:
        await bind_tenant(session, tenant_id)
        await DashboardRepository(session).set_tenant_locale(tenant_id, locale)


@pytest.fixture
async def org(app, client, new_tenant):
    tenant, key = await new_tenant("Boutique Kin SARL", "A1234567Z")
    # A Congolese tenant's console speaks French by default; these tests read the English msgids, and
    # the language tests (test_languages.py) choose their own.
    await set_tenant_language(app, tenant["id"], "en")
    outlet = (await client.post("/v1/outlets", json={"code": "KIN1", "name": "Gombe"}, headers=key)).json()
    return {"tenant": tenant, "key": key, "outlet": outlet}


async def make_user(app, org: dict, address: str, role: str, outlet_ids=()) -> None:  # noqa: ANN001
    """Through the service, as the tenant's owner would (the API's own tests cover POST /v1/users)."""
    tenant_id = org["tenant"]["id"]
    async with app.state.db.transaction() as session:
        await bind_tenant(session, tenant_id)
        actor = Principal(kind="user", tenant_id=tenant_id, user_id="usr_setup", role="owner")
        await users.create_user(session, app.state.settings, actor, tenant_id, email=address, name=address,
                                role=role, password=PASSWORD, outlet_ids=list(outlet_ids))


def email(org: dict, who: str) -> str:
    """Tests share one database per backend: an email per tenant keeps sign-ins unambiguous."""
    return f"{who}.{org['tenant']['id'][-12:]}@kin.cd"


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


class Browser:
    """An httpx client that keeps cookies like a browser and knows the page's CSRF token."""

    def __init__(self, app, base_url: str = "http://test") -> None:  # noqa: ANN001
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                      base_url=base_url, follow_redirects=False)
        self.csrf = ""

    async def get(self, url: str, **kw) -> httpx.Response:  # noqa: ANN003
        r = await self.http.get(url, **kw)
        if 'name="csrf"' in r.text:
            self.csrf = csrf_of(r.text)
        return r

    async def post(self, url: str, data: dict | list | None = None, *, csrf: bool = True, **kw) -> httpx.Response:  # noqa: ANN003
        pairs = list(data.items()) if isinstance(data, dict) else list(data or [])
        if csrf:
            pairs.append(("csrf", self.csrf))
        headers = {"Content-Type": "application/x-www-form-urlencoded", **kw.pop("headers", {})}
        r = await self.http.post(url, content=urlencode(pairs), headers=headers, **kw)
        if 'name="csrf"' in r.text:
            self.csrf = csrf_of(r.text)
        return r

    async def login(self, email: str, password: str = PASSWORD) -> httpx.Response:
        await self.get("/app/login")
        r = await self.post("/app/login", {"email": email, "password": password, "next": "/app"})
        assert r.status_code == 303, r.text[:500]
        await self.get("/app")
        return r

    async def aclose(self) -> None:
        await self.http.aclose()


@pytest.fixture
async def browser(app):
    b = Browser(app)
    yield b
    await b.aclose()


@pytest.fixture
async def owner(app, client, org):
    await make_user(app, org, email(org, "owner"), "owner")
    b = Browser(app)
    await b.login(email(org, "owner"))
    yield b
    await b.aclose()


@pytest.fixture
async def cashier(app, client, org):
    await make_user(app, org, email(org, "cashier"), "cashier", [org["outlet"]["id"]])
    b = Browser(app)
    await b.login(email(org, "cashier"))
    yield b
    await b.aclose()
