"""Never more than the caller may do, for revocation too; a suspended tenant refuses every write."""
from __future__ import annotations

from tests.auth.test_users import PASSWORD, bearer, login, make_user
from tests.auth.test_users import org, settings  # noqa: F401 - the users tests' tenant and cheap Argon2


async def test_an_admin_cannot_revoke_the_root_key_but_revokes_lesser_keys(client, org):  # noqa: F811
    tenant, root, _ = org
    await make_user(client, root, "adm-edges@org.cd", "admin")
    admin = bearer((await login(client, "adm-edges@org.cd", tenant_id=tenant["id"])).json())
    keys = (await client.get("/v1/api-keys", headers=root)).json()["data"]
    root_id = next(k["id"] for k in keys)  # the tenant's first key: every scope, ownership included

    r = await client.delete(f"/v1/api-keys/{root_id}", headers=admin)
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "scope_exceeds_caller" and r.json()["exceeding"] == ["ownership"]
    assert (await client.get("/v1/outlets", headers=root)).status_code == 200  # still works
    assert (await client.get(f"/v1/api-keys/{root_id}", headers=root)).json()["revoked_at"] is None

    # A key the admin could have made itself, it may revoke.
    till = (await client.post("/v1/api-keys", json={"name": "till", "scopes": ["invoices:write"]},
                              headers=root)).json()
    assert (await client.delete(f"/v1/api-keys/{till['id']}", headers=admin)).status_code == 200
    # The owner's root key revokes an admin-scope key (it may do all that key may).
    made = (await client.post("/v1/api-keys", json={"name": "adm", "scopes": ["admin"]}, headers=root)).json()
    assert (await client.delete(f"/v1/api-keys/{made['id']}", headers=root)).status_code == 200


async def test_an_admin_cannot_deactivate_an_owner(client, org):  # noqa: F811
    tenant, root, _ = org
    owner = await make_user(client, root, "own-edges@org.cd", "owner")
    await make_user(client, root, "adm-edges@org.cd", "admin")
    admin = bearer((await login(client, "adm-edges@org.cd", tenant_id=tenant["id"])).json())
    r = await client.patch(f"/v1/users/{owner['id']}", json={"status": "deactivated"}, headers=admin)
    assert r.status_code == 403 and r.json()["code"] == "scope_exceeds_caller", r.text
    assert (await login(client, "own-edges@org.cd", tenant_id=tenant["id"])).status_code == 200  # still active


async def test_an_invitation_made_before_a_suspension_is_refused_during_it(client, org, operator_headers):  # noqa: F811
    tenant, root, _ = org
    inv = (await client.post("/v1/users/invitations", json={"email": "late-edges@org.cd", "name": "Late", "role": "cashier"},
                             headers=root)).json()
    assert (await client.post(f"/v1/tenants/{tenant['id']}/suspend", headers=operator_headers)).status_code == 200

    r = await client.post("/v1/users/accept", json={"token": inv["token"], "password": PASSWORD})
    assert r.status_code == 403 and r.json()["code"] == "tenant_suspended", r.text
    assert (await login(client, "late-edges@org.cd", tenant_id=tenant["id"])).status_code == 401  # no user was added
    # The same mechanism refuses the tenant's own credentials' writes...
    r = await client.post("/v1/outlets", json={"code": "SUSP", "name": "x"}, headers=root)
    assert r.status_code == 403 and r.json()["code"] == "tenant_suspended"
    # ...and the refused redemption did not use the invitation up: after reactivation it works.
    assert (await client.post(f"/v1/tenants/{tenant['id']}/activate", headers=operator_headers)).status_code == 200
    ok = await client.post("/v1/users/accept", json={"token": inv["token"], "password": PASSWORD})
    assert ok.status_code == 201, ok.text
