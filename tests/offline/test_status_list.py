"""The public status lists, decoded with the standard library and joserfc only."""
from __future__ import annotations

import base64
import gzip
import json

import pytest
from joserfc import jws
from joserfc.jwk import ECKey

from tests.offline.support import issue_credential, register_device


def read_list(token: str, jwks: dict) -> tuple[dict, dict, bytes]:
    """Verify the JWS with the key its header names, then un-gzip the bitstring."""
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    jwk = jwks[header["kid"]]
    key = ECKey.import_key({k: jwk[k] for k in ("kty", "crv", "x", "y")})
    claims = json.loads(jws.deserialize_compact(token, key, algorithms=["ES256"]).payload)
    encoded = claims["credentialSubject"]["encodedList"]
    assert encoded[0] == "u"  # multibase base64url
    body = encoded[1:]
    return header, claims, gzip.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def bit(bits: bytes, i: int) -> int:
    return (bits[i // 8] >> (7 - i % 8)) & 1  # index 0 is the left-most bit


@pytest.fixture
async def revoked(client, new_tenant):
    tenant, headers = await new_tenant()
    outlet = (await client.post("/v1/outlets", json={"code": "SHOP", "name": "Shop"}, headers=headers)).json()
    device, _ = await register_device(client, headers, tenant["id"], outlet["id"])
    creds = [await issue_credential(client, headers, device["id"], block_size=2) for _ in range(10)]
    for i in (0, 2, 9):
        r = await client.post(f"/v1/devices/{device['id']}/credentials/{creds[i]['jti']}/revoke", headers=headers,
                              json={"reason": "key_compromise"} if i == 9 else None)
        assert r.status_code == 200, r.text
    return {"tenant": tenant, "creds": creds, "headers": headers, "device": device}


async def test_the_bitstring_status_list_credential(client, revoked):
    tenant_id = revoked["tenant"]["id"]
    r = await client.get(f"/v1/status-lists/{tenant_id}")  # no authentication
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/vc+jwt")
    assert "max-age=60" in r.headers["cache-control"] and "public" in r.headers["cache-control"]
    jwks = {k["kid"]: k for k in (await client.get("/.well-known/jwks.json")).json()["keys"]}
    header, claims, bits = read_list(r.text, jwks)
    assert header["typ"] == "vc+jwt" and header["alg"] == "ES256"
    # Signed by the key that signed the tenant's credentials.
    assert header["kid"] == json.loads(base64.urlsafe_b64decode(revoked["creds"][0]["credential"].split(".")[0] + "=="))["kid"]
    assert claims["@context"][0] == "https://www.w3.org/ns/credentials/v2"
    assert claims["type"] == ["VerifiableCredential", "BitstringStatusListCredential"]
    subject = claims["credentialSubject"]
    assert subject["type"] == "BitstringStatusList" and subject["statusPurpose"] == "revocation"
    assert claims["id"].endswith(f"/v1/status-lists/{tenant_id}") and subject["id"] == claims["id"] + "#list"
    assert len(bits) * 8 >= 131_072
    indexes = [c["status_index"] for c in revoked["creds"]]
    assert [bit(bits, i) for i in indexes] == [1, 0, 1, 0, 0, 0, 0, 0, 0, 1]
    assert sum(bin(b).count("1") for b in bits) == 3
    # Each credential points at this very list, at its own bit.
    token_claims = json.loads(base64.urlsafe_b64decode(revoked["creds"][2]["credential"].split(".")[1] + "=="))
    assert token_claims["status"]["status_list"] == {"idx": indexes[2], "uri": claims["id"]}


async def test_the_plain_json_list(client, revoked):
    tenant_id = revoked["tenant"]["id"]
    r = await client.get(f"/v1/status-lists/{tenant_id}.json")
    assert r.status_code == 200 and "max-age=60" in r.headers["cache-control"]
    body = r.json()
    assert body["tenant_id"] == tenant_id
    listed = [(e["jti"], e["status_index"], e["reason"]) for e in body["revoked"]]
    c = revoked["creds"]
    assert listed == [(c[0]["jti"], c[0]["status_index"], "requested"), (c[2]["jti"], c[2]["status_index"], "requested"),
                      (c[9]["jti"], c[9]["status_index"], "key_compromise")]
    assert body["updated_at"] == max(e["revoked_at"] for e in body["revoked"])


async def test_a_revocation_shows_at_once_and_a_disable_too(client, revoked):
    tenant_id, c = revoked["tenant"]["id"], revoked["creds"]
    await client.post(f"/v1/devices/{revoked['device']['id']}/disable", headers=revoked["headers"])
    body = (await client.get(f"/v1/status-lists/{tenant_id}.json")).json()
    assert {e["jti"] for e in body["revoked"]} == {x["jti"] for x in c}
    assert {e["reason"] for e in body["revoked"]} == {"requested", "key_compromise", "device_disabled"}
    jwks = {k["kid"]: k for k in (await client.get("/.well-known/jwks.json")).json()["keys"]}
    _, _, bits = read_list((await client.get(f"/v1/status-lists/{tenant_id}")).text, jwks)
    assert all(bit(bits, x["status_index"]) for x in c)


async def test_an_empty_list_and_an_unknown_tenant(client, new_tenant):
    tenant, _ = await new_tenant()
    body = (await client.get(f"/v1/status-lists/{tenant['id']}.json")).json()
    assert body == {"object": "status_list", "tenant_id": tenant["id"], "updated_at": None, "revoked": []}
    jwks = {k["kid"]: k for k in (await client.get("/.well-known/jwks.json")).json()["keys"]}
    _, _, bits = read_list((await client.get(f"/v1/status-lists/{tenant['id']}")).text, jwks)
    assert len(bits) == 16_384 and not any(bits)
    for url in ("/v1/status-lists/ten_nobody", "/v1/status-lists/ten_nobody.json"):
        r = await client.get(url)
        assert r.status_code == 404 and r.json()["code"] == "tenant_not_found"
        assert r.headers["content-type"].startswith("application/problem+json")
    assert (await client.get("/v1/status-lists/bad%20id")).status_code == 422
