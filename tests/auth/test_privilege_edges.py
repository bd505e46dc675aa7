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
    assert r.json()["code"] == "scope_exceeds_caller" and r.json()["exceeding"] == ["ownership", "privacy"]  # privacy: the owner files erasures
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


async def test_an_admin_scope_key_grants_no_role_beyond_its_own_permissions(client, org):  # noqa: F811
    """The review's repro: a key with only the `admin` scope (which carries ownership, not invoices:write)
    made an owner, signed in as it and minted a key with every scope. Creation, invitation and role
    changes now go through the same rule as keys: never more than the caller may do."""
    tenant, root, _ = org
    made = (await client.post("/v1/api-keys", json={"name": "adm", "scopes": ["admin"]}, headers=root)).json()
    admin_key = {"Authorization": f"Bearer {made['api_key']}"}

    for role in ("owner", "admin", "cashier"):
        r = await client.post("/v1/users", json={"email": f"{role}-esc@org.cd", "name": "x", "role": role,
                                                 "password": PASSWORD}, headers=admin_key)
        assert r.status_code == 403, r.text
        assert (r.json()["code"], r.json()["field"]) == ("scope_exceeds_caller", "role"), r.json()
        assert "invoices:write" in r.json()["exceeding"]
        r = await client.post("/v1/users/invitations", json={"email": f"{role}-inv@org.cd", "name": "x", "role": role},
                              headers=admin_key)
        assert r.status_code == 403 and r.json()["code"] == "scope_exceeds_caller", r.text
    assert (await login(client, "owner-esc@org.cd", tenant_id=tenant["id"])).status_code == 401  # nobody was made

    # An admin user may grant what it may do itself (admin, cashier...), never owner, by any route.
    await make_user(client, root, "adm-grant@org.cd", "admin")
    admin = bearer((await login(client, "adm-grant@org.cd", tenant_id=tenant["id"])).json())
    r = await client.post("/v1/users/invitations", json={"email": "own-inv@org.cd", "name": "x", "role": "owner"},
                          headers=admin)
    assert r.status_code == 403 and r.json()["exceeding"] == ["ownership", "privacy"], r.text
    cashier = await make_user(client, root, "cash-grant@org.cd", "cashier")
    r = await client.patch(f"/v1/users/{cashier['id']}", json={"role": "owner"}, headers=admin)
    assert r.status_code == 403 and (r.json()["code"], r.json()["field"]) == ("scope_exceeds_caller", "role")
    r = await client.patch(f"/v1/users/{cashier['id']}", json={"role": "admin"}, headers=admin)
    assert r.status_code == 200 and r.json()["role"] == "admin", r.text
    r = await client.post("/v1/users/invitations", json={"email": "adm-inv@org.cd", "name": "x", "role": "admin"},
                          headers=admin)
    assert r.status_code == 201, r.text
    # The root key (every scope) may make owners.
    assert (await make_user(client, root, "own-root@org.cd", "owner"))["role"] == "owner"
