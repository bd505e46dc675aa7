"""Operators in the /ops console: password sign-in, roles (support reads only), sessions, lockouts."""
from __future__ import annotations

import pytest

from tests.conftest import OPERATOR_TOKEN
from tests.controlplane.conftest import PASSWORD
from tests.dashboard.conftest import Browser


async def sign_in(app, email: str, password: str = PASSWORD) -> Browser:  # noqa: ANN001
    b = Browser(app)
    assert (await b.get("/ops")).headers["location"].startswith("/ops/login")
    page = await b.get("/ops/login")
    assert 'name="email"' in page.text and 'for="token"' in page.text
    r = await b.post("/ops/login", {"email": email, "password": password})
    assert r.status_code == 303 and r.headers["location"] == "/ops", r.text[:300]
    cookie = next(c.lower() for c in r.headers.get_list("set-cookie") if c.startswith("stalela_ops="))
    assert "httponly" in cookie and "path=/ops" in cookie and "samesite=strict" in cookie
    await b.get("/ops")
    return b


async def audit_actions(client, operator_headers, target: str) -> list[str]:  # noqa: ANN001
    page = (await client.get("/v1/ops/audit?limit=100", headers=operator_headers)).json()["data"]
    return [e["action"] for e in reversed(page) if e["target"] == target]


async def test_support_reads_every_page_and_changes_nothing(app, client, operator_headers, new_operator,
                                                            new_tenant):
    tenant, _ = await new_tenant("Readonly SARL", "RO1")
    support = await new_operator("support", who="support")
    b = await sign_in(app, support["email"])
    for path in ("/ops", "/ops/sync", "/ops/tenants", "/ops/privacy", "/ops/billing", "/ops/operators", "/ops/audit"):
        page = await b.get(path)
        assert page.status_code == 200, (path, page.text[:300])
        assert support["email"] in page.text and ">support<" in page.text  # who is looking, in the header
    tenants = (await b.get("/ops/tenants")).text
    assert tenant["id"] in tenants and f"/ops/tenants/{tenant['id']}/suspend" not in tenants
    assert 'action="/ops/operators"' not in (await b.get("/ops/operators")).text
    for path, data in [(f"/ops/tenants/{tenant['id']}/suspend", {}), ("/ops/dead/replay", {"topic": "x.y"}),
                       ("/ops/operators", {"email": "x@y.example", "name": "X", "role": "platform_admin"}),
                       (f"/ops/operators/{support['id']}", {"role": "platform_admin"})]:
        r = await b.post(path, data)
        assert r.status_code == 403 and "read-only" in r.text, path
    assert (await client.get(f"/v1/tenants/{tenant['id']}", headers=operator_headers)).json()["status"] == "active"
    assert (await client.get(f"/v1/operators/{support['id']}", headers=operator_headers)).json()["role"] == "support"
    r = await b.post("/ops/logout")  # signing out is not a change
    assert r.status_code == 303
    await b.aclose()


async def test_platform_admin_acts_and_is_named_in_the_log(app, client, operator_headers, new_operator, new_tenant):
    tenant, _ = await new_tenant("Managed SARL", "MG1")
    admin = await new_operator("platform_admin", who="admin")
    b = await sign_in(app, admin["email"])
    assert f"/ops/tenants/{tenant['id']}/suspend" in (await b.get("/ops/tenants")).text
    assert (await b.post(f"/ops/tenants/{tenant['id']}/suspend")).status_code == 303
    assert (await client.get(f"/v1/tenants/{tenant['id']}", headers=operator_headers)).json()["status"] == "suspended"
    assert (await b.post("/ops/dead/replay", {"topic": "nothing.dead"})).status_code == 303
    await b.get("/ops/operators")
    r = await b.post("/ops/operators", {"email": "new.support@ops.example.test", "name": "New", "role": "support",
                                        "password": ""})
    assert r.status_code == 303
    made = [o for o in (await client.get("/v1/operators?limit=100", headers=operator_headers)).json()["data"]
            if o["email"] == "new.support@ops.example.test"]
    assert len(made) == 1 and made[0]["password"] is False
    await b.get("/ops/operators")
    assert (await b.post(f"/ops/operators/{made[0]['id']}", {"role": "support", "status": "deactivated"})).status_code == 303
    await b.get("/ops/operators")
    self_change = await b.post(f"/ops/operators/{admin['id']}", {"role": "support", "status": "active"})
    assert self_change.status_code == 409
    for bad in ({"email": "not-an-address", "name": "X", "role": "support"},
                {"email": "x" * 250 + "@ops.example", "name": "X", "role": "support"},
                {"email": "ok@ops.example.test", "name": "N" * 201, "role": "support"},
                {"email": "ok@ops.example.test", "name": "N", "role": "root"},
                {"email": "ok@ops.example.test", "name": "N", "role": "support", "password": "password"}):
        await b.get("/ops/operators")
        assert (await b.post("/ops/operators", bad)).status_code == 422, bad  # a page saying why, never a 500
    page = (await client.get("/v1/ops/audit?limit=100", headers=operator_headers)).json()["data"]
    mine = [(e["action"], e["target"]) for e in reversed(page) if e["actor"] == f"operator:{admin['id']}"]
    assert ("operator.login", admin["id"]) in mine and ("tenant.suspended", tenant["id"]) in mine
    assert ("outbox.replayed", "nothing.dead") in mine
    assert ("operator.created", made[0]["id"]) in mine and ("operator.updated", made[0]["id"]) in mine
    audit = await b.get("/ops/audit")
    assert "Chain intact" in audit.text and f"operator:{admin['id']}" in audit.text
    await b.aclose()


async def test_sign_out_and_deactivation_end_the_session(app, client, operator_headers, new_operator):
    admin = await new_operator("platform_admin", who="leaver")
    b = await sign_in(app, admin["email"])
    assert (await b.post("/ops/logout", csrf=False)).status_code == 403  # CSRF like every form
    cookie = b.http.cookies.get("stalela_ops")
    assert (await b.post("/ops/logout")).headers["location"] == "/ops/login"
    replay = Browser(app)  # the old cookie, presented again after sign-out, opens nothing
    replay.http.cookies.set("stalela_ops", cookie, path="/ops")
    assert (await replay.get("/ops")).status_code == 303
    b2 = await sign_in(app, admin["email"])
    await client.patch(f"/v1/operators/{admin['id']}", json={"status": "deactivated"}, headers=operator_headers)
    assert (await b2.get("/ops")).headers["location"].startswith("/ops/login")
    await b2.get("/ops/login")
    refused = await b2.post("/ops/login", {"email": admin["email"], "password": PASSWORD})
    assert refused.status_code == 401
    actions = await audit_actions(client, operator_headers, admin["id"])
    assert actions[:3] == ["operator.created", "operator.login", "operator.logout"]
    assert actions[-1] == "operator.login_failed"
    for browser in (b, replay, b2):
        await browser.aclose()


async def test_repeated_failures_lock_the_account_and_are_audited(app, client, operator_headers, new_operator):
    op = await new_operator("support", who="locked")
    b = Browser(app)
    await b.get("/ops/login")
    limit = app.state.settings.login_max_failures
    for _ in range(limit):
        r = await b.post("/ops/login", {"email": op["email"], "password": "wrong passphrase"})
        assert r.status_code == 401 and "Wrong email or password" in r.text
    locked = await b.post("/ops/login", {"email": op["email"], "password": PASSWORD})
    assert locked.status_code == 429  # the right password too, until the window passes
    actions = await audit_actions(client, operator_headers, op["id"])
    assert actions.count("operator.login_failed") == limit and actions[-1] == "operator.login_locked"
    assert "operator.login" not in actions
    await b.aclose()


async def test_the_static_token_still_signs_in_for_automation(app, client, operator_headers):
    b = Browser(app)
    await b.get("/ops/login")
    assert (await b.post("/ops/login", {"token": "nope"})).status_code == 401
    assert (await b.post("/ops/login", {"token": OPERATOR_TOKEN}, csrf=False)).status_code == 403  # CSRF
    r = await b.post("/ops/login", {"token": OPERATOR_TOKEN})
    assert r.status_code == 303
    page = await b.get("/ops/tenants")
    assert page.status_code == 200 and "operator token" in page.text
    page = (await client.get("/v1/ops/audit?limit=10", headers=operator_headers)).json()["data"]
    assert any(e["action"] == "operator.login" and e["actor"] == "operator:token" for e in page)
    await b.aclose()


@pytest.mark.parametrize("path", ["/ops/operators", "/ops/audit"])
async def test_new_pages_need_a_session(app, path):
    b = Browser(app)
    assert (await b.get(path)).headers["location"].startswith("/ops/login")
    await b.aclose()


async def test_a_session_expires(app, new_operator):
    from datetime import timedelta

    from sqlalchemy import update

    from stalela.controlplane.operator_models import OperatorSession
    from stalela.db.base import utcnow

    op = await new_operator("support", who="expiring")
    b = await sign_in(app, op["email"])
    assert (await b.get("/ops/audit")).status_code == 200
    async with app.state.db.transaction() as session:  # eight hours later
        await session.execute(update(OperatorSession).where(OperatorSession.operator_id == op["id"])
                              .values(expires_at=utcnow() - timedelta(seconds=1)))
    r = await b.get("/ops/audit")
    assert r.status_code == 303 and r.headers["location"].startswith("/ops/login")
    await b.aclose()
