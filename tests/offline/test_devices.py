"""Devices through the API: registration (nonce, proof, key), listing, disabling, who may see what."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import update

from stalela.fiscal.core import offline as core
from stalela.fiscal.core.seal import b64url_encode
from stalela.offline import clock, device_service
from stalela.offline.models import Device
from tests.offline.support import es256, issue_credential, public_jwk, register_device
from tests.support.ar import ar_tenant


async def _shop(client, new_tenant, code: str = "SHOP"):
    tenant, headers = await new_tenant()
    outlet = (await client.post("/v1/outlets", json={"code": code, "name": "Shop"}, headers=headers)).json()
    return tenant, headers, outlet


async def _attempt(client, headers, tenant_id: str, outlet_id: str, key, *, nonce: str | None = None,
                   message: bytes | None = None, jwk: dict | None = None):
    if nonce is None:
        nonce = (await client.post("/v1/devices/challenges", headers=headers)).json()["nonce"]
    jwk = jwk or public_jwk(key)
    message = message or core.registration_message(nonce, tenant_id, core.jwk_thumbprint(public_jwk(key)))
    body = {"name": "Till", "outlet_id": outlet_id, "public_key": jwk, "nonce": nonce,
            "proof": b64url_encode(es256(key, message))}
    return await client.post("/v1/devices", headers=headers, json=body), nonce


async def test_registration_proves_the_key_and_spends_the_nonce(client, new_tenant):
    tenant, headers, outlet = await _shop(client, new_tenant)
    key = ec.generate_private_key(ec.SECP256R1())
    r, nonce = await _attempt(client, headers, tenant["id"], outlet["id"], key)
    assert r.status_code == 201, r.text
    device = r.json()
    assert device["status"] == "active" and device["outlet_id"] == outlet["id"]
    assert device["public_key"]["kid"] == core.jwk_thumbprint(public_jwk(key))
    assert "d" not in device["public_key"]
    # The same nonce a second time, even with another key: refused.
    r, _ = await _attempt(client, headers, tenant["id"], outlet["id"], ec.generate_private_key(ec.SECP256R1()),
                          nonce=nonce)
    assert r.status_code == 422 and r.json()["code"] == "device_nonce_invalid"
    # The same key again, with a fresh nonce: 409.
    r, _ = await _attempt(client, headers, tenant["id"], outlet["id"], key)
    assert r.status_code == 409 and r.json()["code"] == "device_key_taken"
    assert (await client.get(f"/v1/devices/{device['id']}", headers=headers)).json() == device


async def test_a_nonce_lives_sixty_seconds(client, new_tenant):
    tenant, headers, outlet = await _shop(client, new_tenant)
    nonce = (await client.post("/v1/devices/challenges", headers=headers)).json()["nonce"]
    later = datetime.now(timezone.utc) + timedelta(seconds=61)
    with clock.clock.use(lambda: later):
        r, _ = await _attempt(client, headers, tenant["id"], outlet["id"], ec.generate_private_key(ec.SECP256R1()),
                              nonce=nonce)
    assert r.status_code == 422 and r.json()["code"] == "device_nonce_invalid"
    # Within the minute it works.
    nonce = (await client.post("/v1/devices/challenges", headers=headers)).json()["nonce"]
    with clock.clock.use(lambda: datetime.now(timezone.utc) + timedelta(seconds=50)):
        r, _ = await _attempt(client, headers, tenant["id"], outlet["id"], ec.generate_private_key(ec.SECP256R1()),
                              nonce=nonce)
    assert r.status_code == 201, r.text


async def test_wrong_proofs_and_keys_are_refused(client, new_tenant):
    tenant, headers, outlet = await _shop(client, new_tenant)
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    # Signed by another key than the one registered.
    nonce = (await client.post("/v1/devices/challenges", headers=headers)).json()["nonce"]
    message = core.registration_message(nonce, tenant["id"], core.jwk_thumbprint(public_jwk(key)))
    body = {"name": "Till", "outlet_id": outlet["id"], "public_key": public_jwk(key), "nonce": nonce,
            "proof": b64url_encode(es256(other, message))}
    r = await client.post("/v1/devices", headers=headers, json=body)
    assert r.status_code == 422 and r.json()["code"] == "device_proof_invalid"
    # Signed by the right key, but another tenant's message (a proof made for elsewhere).
    r, _ = await _attempt(client, headers, tenant["id"], outlet["id"], key,
                          message=core.registration_message("x", "ten_other", core.jwk_thumbprint(public_jwk(key))))
    assert r.status_code == 422 and r.json()["code"] == "device_proof_invalid"
    # A private key in the JWK: refused before anything else.
    private = {**public_jwk(key), "d": b64url_encode(key.private_numbers().private_value.to_bytes(32, "big"))}
    r, _ = await _attempt(client, headers, tenant["id"], outlet["id"], key, jwk=private)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "public_key.d"
    # Another curve.
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key().public_numbers()
    bad = {"kty": "EC", "crv": "P-384", "x": b64url_encode(p384.x.to_bytes(48, "big")),
           "y": b64url_encode(p384.y.to_bytes(48, "big"))}
    r, _ = await _attempt(client, headers, tenant["id"], outlet["id"], key, jwk=bad)
    assert r.status_code == 422 and r.json()["code"] == "device_key_invalid"
    # An outlet the tenant does not have.
    r, _ = await _attempt(client, headers, tenant["id"], "out_nope", key)
    assert r.status_code == 422 and r.json()["code"] == "outlet_not_found"
    # None of these registered anything.
    assert (await client.get("/v1/devices", headers=headers)).json() == {"data": [], "has_more": False}


async def test_a_wrong_proof_spends_the_nonce(client, new_tenant):
    """The nonce's consumption is committed before the proof is checked: a 422 does not roll it back, so a
    proof cannot be retried against one challenge."""
    tenant, headers, outlet = await _shop(client, new_tenant)
    key = ec.generate_private_key(ec.SECP256R1())
    nonce = (await client.post("/v1/devices/challenges", headers=headers)).json()["nonce"]
    r, _ = await _attempt(client, headers, tenant["id"], outlet["id"], key, nonce=nonce,
                          message=core.registration_message(nonce, tenant["id"], "wrong"))
    assert r.status_code == 422 and r.json()["code"] == "device_proof_invalid"
    r, _ = await _attempt(client, headers, tenant["id"], outlet["id"], key, nonce=nonce)
    assert r.status_code == 422 and r.json()["code"] == "device_nonce_invalid"
    # A refusal before the nonce is looked at (no such outlet) leaves it for the real attempt.
    nonce = (await client.post("/v1/devices/challenges", headers=headers)).json()["nonce"]
    r, _ = await _attempt(client, headers, tenant["id"], "out_nope", key, nonce=nonce)
    assert r.status_code == 422 and r.json()["code"] == "outlet_not_found"
    r, _ = await _attempt(client, headers, tenant["id"], outlet["id"], key, nonce=nonce)
    assert r.status_code == 201, r.text


async def test_an_argentine_tenant_cannot_seal_offline(client, operator_headers):
    _, headers = await ar_tenant(client)
    r = await client.post("/v1/devices/challenges", headers=headers)
    assert r.status_code == 422 and r.json()["code"] == "offline_not_supported"


async def test_list_pages_and_filters(client, new_tenant):
    tenant, headers, shop = await _shop(client, new_tenant)
    depot = (await client.post("/v1/outlets", json={"code": "DEPOT", "name": "Depot"}, headers=headers)).json()
    made = [(await register_device(client, headers, tenant["id"], o["id"], name=f"T{i}"))[0]
            for i, o in enumerate([shop, depot, shop, shop])]
    r = await client.get("/v1/devices", headers=headers, params={"limit": 2})
    page = r.json()
    assert [d["id"] for d in page["data"]] == [made[3]["id"], made[2]["id"]] and page["has_more"]
    r = await client.get("/v1/devices", headers=headers, params={"limit": 2, "starting_after": made[2]["id"]})
    assert [d["id"] for d in r.json()["data"]] == [made[1]["id"], made[0]["id"]] and not r.json()["has_more"]
    r = await client.get("/v1/devices", headers=headers, params={"outlet_id": depot["id"]})
    assert [d["id"] for d in r.json()["data"]] == [made[1]["id"]]
    await client.post(f"/v1/devices/{made[0]['id']}/disable", headers=headers)
    r = await client.get("/v1/devices", headers=headers, params={"status": "disabled"})
    assert [d["id"] for d in r.json()["data"]] == [made[0]["id"]]
    r = await client.get("/v1/devices", headers=headers, params={"status": "active", "outlet_id": shop["id"]})
    assert [d["id"] for d in r.json()["data"]] == [made[3]["id"], made[2]["id"]]
    r = await client.get("/v1/devices", headers=headers, params={"starting_after": "dev_unknown"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_cursor"
    r = await client.get("/v1/devices", headers=headers, params={"status": "lost"})
    assert r.status_code == 422


async def test_disable_revokes_every_live_credential(client, new_tenant):
    tenant, headers, outlet = await _shop(client, new_tenant)
    device, _ = await register_device(client, headers, tenant["id"], outlet["id"])
    first = await issue_credential(client, headers, device["id"], block_size=5)
    second = await issue_credential(client, headers, device["id"], block_size=5)
    r = await client.post(f"/v1/devices/{device['id']}/credentials/{first['jti']}/revoke", headers=headers,
                          json={"reason": "device_lost"})
    assert r.json()["revocation_reason"] == "device_lost" and r.json()["status"] == "revoked"
    r = await client.post(f"/v1/devices/{device['id']}/disable", headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "disabled"
    creds = {c["jti"]: c for c in (await client.get(f"/v1/devices/{device['id']}/credentials", headers=headers)).json()["data"]}
    assert creds[first["jti"]]["revocation_reason"] == "device_lost"  # the first revocation stays
    assert creds[second["jti"]]["revocation_reason"] == "device_disabled"
    assert creds[second["jti"]]["status"] == "revoked"
    # Idempotent, and no new credential for a disabled device.
    assert (await client.post(f"/v1/devices/{device['id']}/disable", headers=headers)).status_code == 200
    r = await client.post(f"/v1/devices/{device['id']}/credentials", headers=headers, json={"block_size": 5})
    assert r.status_code == 409 and r.json()["code"] == "device_disabled"
    # A reason the cloud keeps for itself cannot be given.
    r = await client.post(f"/v1/devices/{device['id']}/credentials/{second['jti']}/revoke", headers=headers,
                          json={"reason": "fork"})
    assert r.status_code == 422


async def test_a_device_disabled_while_its_credential_is_issued_gets_none(client, new_tenant, settings, monkeypatch):
    """The race: the device is read active, then a disable commits before the credential is signed. The
    device row is read again under its lock (after the tenant's log lock): 409, no live credential."""
    tenant, headers, outlet = await _shop(client, new_tenant)
    device, _ = await register_device(client, headers, tenant["id"], outlet["id"])
    read = device_service.get_device

    async def read_then_disabled(session, principal, device_id):
        found = await read(session, principal, device_id)
        assert found.status == "active"
        if settings.database_url.startswith("sqlite"):
            # SQLite serialises writers from BEGIN IMMEDIATE: no disable can commit in this window. Stand in
            # for one: the row changes under the object already loaded.
            await session.execute(update(Device).where(Device.id == device_id).values(status="disabled")
                                  .execution_options(synchronize_session=False))
        else:
            r = await client.post(f"/v1/devices/{device_id}/disable", headers=headers)  # its own transaction
            assert r.status_code == 200 and r.json()["status"] == "disabled"
        return found

    monkeypatch.setattr(device_service, "get_device", read_then_disabled)
    r = await client.post(f"/v1/devices/{device['id']}/credentials", headers=headers, json={"block_size": 5})
    assert r.status_code == 409 and r.json()["code"] == "device_disabled", r.text
    monkeypatch.undo()
    listed = (await client.get(f"/v1/devices/{device['id']}/credentials", headers=headers)).json()["data"]
    assert [c for c in listed if c["status"] == "active"] == []


async def test_a_till_key_sees_its_own_outlet_only_and_no_token(client, new_tenant):
    tenant, headers, shop = await _shop(client, new_tenant)
    depot = (await client.post("/v1/outlets", json={"code": "DEPOT", "name": "Depot"}, headers=headers)).json()
    mine, _ = await register_device(client, headers, tenant["id"], shop["id"])
    theirs, _ = await register_device(client, headers, tenant["id"], depot["id"])
    cred = await issue_credential(client, headers, mine["id"], block_size=3)
    other = await issue_credential(client, headers, theirs["id"], block_size=3)
    till = (await client.post("/v1/api-keys", json={"name": "till", "outlet_id": shop["id"]}, headers=headers)).json()
    th = {"Authorization": f"Bearer {till['api_key']}"}
    r = await client.get("/v1/devices", headers=th)
    assert [d["id"] for d in r.json()["data"]] == [mine["id"]]
    assert (await client.get(f"/v1/devices/{mine['id']}", headers=th)).status_code == 200
    listed = (await client.get(f"/v1/devices/{mine['id']}/credentials", headers=th)).json()["data"]
    assert [c["jti"] for c in listed] == [cred["jti"]] and listed[0]["credential"] is None
    got = (await client.get(f"/v1/devices/{mine['id']}/credentials/{cred['jti']}", headers=th)).json()
    assert got["credential"] is None and got["block"] == cred["block"]
    # The admin sees the token in lists too.
    admin = (await client.get(f"/v1/devices/{mine['id']}/credentials/{cred['jti']}", headers=headers)).json()
    assert admin["credential"] == cred["credential"]
    for url in (f"/v1/devices/{theirs['id']}", f"/v1/devices/{theirs['id']}/credentials",
                f"/v1/devices/{theirs['id']}/credentials/{other['jti']}"):
        r = await client.get(url, headers=th)
        assert r.status_code == 404 and r.json()["code"] == "device_not_found", url
    # Writes are the administrators'.
    for url in ("/v1/devices/challenges", f"/v1/devices/{mine['id']}/disable", f"/v1/devices/{mine['id']}/credentials",
                f"/v1/devices/{mine['id']}/credentials/{cred['jti']}/revoke"):
        assert (await client.post(url, headers=th, json={})).status_code == 403, url
    # A credential of another device, named under this one: 404.
    r = await client.get(f"/v1/devices/{mine['id']}/credentials/{other['jti']}", headers=headers)
    assert r.status_code == 404 and r.json()["code"] == "credential_not_found"


async def test_another_tenants_device_is_not_found_on_every_route(client, new_tenant):
    tenant, headers, outlet = await _shop(client, new_tenant)
    device, _ = await register_device(client, headers, tenant["id"], outlet["id"])
    cred = await issue_credential(client, headers, device["id"], block_size=3)
    _, intruder = await new_tenant("Other SARL", "B0000002C")
    d, j = device["id"], cred["jti"]
    for method, url in [("get", f"/v1/devices/{d}"), ("post", f"/v1/devices/{d}/disable"),
                        ("get", f"/v1/devices/{d}/credentials"), ("get", f"/v1/devices/{d}/credentials/{j}"),
                        ("post", f"/v1/devices/{d}/credentials"), ("post", f"/v1/devices/{d}/credentials/{j}/revoke")]:
        r = await (client.get(url, headers=intruder) if method == "get" else client.post(url, headers=intruder, json={}))
        assert r.status_code == 404 and r.json()["code"] == "device_not_found", (method, url, r.text)
    assert (await client.get("/v1/devices", headers=intruder)).json()["data"] == []
    r = await client.get("/v1/devices", headers=intruder, params={"starting_after": d})
    assert r.status_code == 400 and r.json()["code"] == "invalid_cursor"
    # Nothing moved: the device is active, its credential live.
    assert (await client.get(f"/v1/devices/{d}/credentials/{j}", headers=headers)).json()["status"] == "active"
    # An outlet of another tenant cannot take a device either.
    other_tenant, other_headers = await new_tenant("Third SARL", "C0000003D")
    r, _ = await _attempt(client, other_headers, other_tenant["id"], outlet["id"], ec.generate_private_key(ec.SECP256R1()))
    assert r.status_code == 422 and r.json()["code"] == "outlet_not_found"
