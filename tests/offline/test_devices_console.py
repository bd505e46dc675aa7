"""The console's devices page: devices, their credentials, and the revoke and disable forms (CSRF)."""
from __future__ import annotations

from tests.dashboard.conftest import Browser, cashier, email, make_user, org, owner, set_tenant_language  # noqa: F401
from tests.dashboard.conftest import settings  # noqa: F401  (cheap Argon2 for the sign-ins)
from tests.offline.support import issue_credential, register_device


async def test_the_page_lists_devices_and_revokes_with_csrf(client, org, owner):  # noqa: F811
    tid, key, outlet = org["tenant"]["id"], org["key"], org["outlet"]
    device, _ = await register_device(client, key, tid, outlet["id"], name="Caisse 1")
    cred = await issue_credential(client, key, device["id"], block_size=25)
    r = await owner.get("/app/devices")
    assert r.status_code == 200, r.text[:500]
    page = r.text
    assert "Caisse 1" in page and f'data-credential="{cred["jti"]}"' in page
    assert f"{cred['block']['first']}–{cred['block']['last']}" in page and outlet["code"] in page
    assert 'href="/app/devices"' in page  # in the navigation
    url = f"/app/devices/{device['id']}/credentials/{cred['jti']}/revoke"
    # Without the CSRF token: refused, nothing revoked.
    r = await owner.post(url, csrf=False)
    assert r.status_code == 403
    assert (await client.get(f"/v1/devices/{device['id']}/credentials/{cred['jti']}", headers=key)).json()["status"] == "active"
    r = await owner.post(url)
    assert r.status_code == 303 and r.headers["location"] == "/app/devices?revoked=1"
    got = (await client.get(f"/v1/devices/{device['id']}/credentials/{cred['jti']}", headers=key)).json()
    assert got["status"] == "revoked" and got["revocation_reason"] == "requested"
    page = (await owner.get("/app/devices?revoked=1")).text
    assert "Credential revoked" in page and url not in page  # no button for a revoked credential
    # The same revocation in the public list.
    listed = (await client.get(f"/v1/status-lists/{tid}.json")).json()["revoked"]
    assert [e["jti"] for e in listed] == [cred["jti"]]


async def test_disable_from_the_console(client, org, owner):  # noqa: F811
    tid, key, outlet = org["tenant"]["id"], org["key"], org["outlet"]
    device, _ = await register_device(client, key, tid, outlet["id"], name="Caisse 2")
    cred = await issue_credential(client, key, device["id"], block_size=5)
    await owner.get("/app/devices")
    r = await owner.post(f"/app/devices/{device['id']}/disable")
    assert r.status_code == 303 and r.headers["location"] == "/app/devices?disabled=1"
    assert (await client.get(f"/v1/devices/{device['id']}", headers=key)).json()["status"] == "disabled"
    got = (await client.get(f"/v1/devices/{device['id']}/credentials/{cred['jti']}", headers=key)).json()
    assert got["revocation_reason"] == "device_disabled"
    page = (await owner.get("/app/devices?disabled=1")).text
    assert f"/app/devices/{device['id']}/disable" not in page
    # A device this tenant does not have: not found.
    r = await owner.post("/app/devices/dev_nope/disable")
    assert r.status_code == 404


async def test_a_cashier_may_not_open_it(org, cashier):  # noqa: F811
    r = await cashier.get("/app/devices")
    assert r.status_code == 403
    assert 'href="/app/devices"' not in (await cashier.get("/app")).text


async def test_the_page_in_french_and_spanish(app, client, org, owner):  # noqa: F811
    tid, key, outlet = org["tenant"]["id"], org["key"], org["outlet"]
    device, _ = await register_device(client, key, tid, outlet["id"])
    await issue_credential(client, key, device["id"], block_size=2)
    for lang, heading in (("fr", "Appareils hors ligne"), ("es", "Dispositivos sin conexión")):
        await set_tenant_language(app, tid, lang)
        b = Browser(app)
        try:
            await make_user(app, org, email(org, f"owner-{lang}"), "owner")
            await b.login(email(org, f"owner-{lang}"))
            page = (await b.get("/app/devices")).text
            assert f"<h1>{heading}</h1>" in page, page[:2000]
        finally:
            await b.aclose()
