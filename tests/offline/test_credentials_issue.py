"""Issuing credentials through the API: bounds, caps, and Idempotency-Key (issuance consumes numbers)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from stalela.fiscal.core import offline as core
from tests.offline.support import issue_credential, register_device
from tests.support.invoices import sample_invoice


@pytest.fixture
async def shop(client, new_tenant):
    tenant, headers = await new_tenant()
    outlet = (await client.post("/v1/outlets", json={"code": "SHOP", "name": "Shop"}, headers=headers)).json()
    device, _ = await register_device(client, headers, tenant["id"], outlet["id"])
    return {"tenant": tenant, "headers": headers, "outlet": outlet, "device": device,
            "url": f"/v1/devices/{device['id']}/credentials"}


async def _claims(client, token: str) -> dict:
    jwks = {k["kid"]: k for k in (await client.get("/.well-known/jwks.json")).json()["keys"]}
    return core.verify_credential(token, jwks.get, datetime.now(timezone.utc))


async def test_defaults_and_the_status_index(client, shop):
    first = await issue_credential(client, shop["headers"], shop["device"]["id"])
    second = await issue_credential(client, shop["headers"], shop["device"]["id"], block_size=1, lifetime_hours=168)
    claims = await _claims(client, first["credential"])
    assert first["block"] == {"first": 1, "last": 500} and second["block"] == {"first": 501, "last": 501}
    assert claims["caps"] == first["caps"]
    assert "FA" not in claims["caps"]["invoice_types"] and "FV" in claims["caps"]["invoice_types"]
    assert claims["caps"]["max_invoice_total"] == "10000000"
    assert (first["status_index"], second["status_index"]) == (0, 1)
    assert claims["status"]["status_list"]["idx"] == 0
    assert claims["status"]["status_list"]["uri"].endswith(f"/v1/status-lists/{shop['tenant']['id']}")
    assert first["status"] == "active" and first["revoked_at"] is None
    longest = await _claims(client, second["credential"])
    # Its own nbf: issued a second after the first on a loaded machine, it is measured from its own start.
    assert longest["exp"] - longest["nbf"] <= 7 * 86400


@pytest.mark.parametrize("body", [
    {"lifetime_hours": 168.01}, {"lifetime_hours": 24 * 8}, {"lifetime_hours": 0},
    {"block_size": 0}, {"block_size": 100_001}, {"block_size": -3},
])
async def test_bounds(client, shop, body):
    r = await client.post(shop["url"], headers=shop["headers"], json=body)
    assert r.status_code == 422, r.text


async def test_a_one_second_credential_is_refused_by_the_issuer(client, shop):
    r = await client.post(shop["url"], headers=shop["headers"], json={"lifetime_hours": 0.0001})
    assert r.status_code == 422 and r.json()["code"] == "credential_lifetime_invalid"


@pytest.mark.parametrize("caps,field", [
    ({"invoice_types": ["FA"]}, "caps.invoice_types"),  # a credit note needs the cloud (what is left to credit)
    ({"invoice_types": ["FV", "EA"]}, "caps.invoice_types"),
    ({"invoice_types": ["ZZ"]}, "caps.invoice_types"),
    ({"tax_groups": ["A", "Z"]}, "caps.tax_groups"),
])
async def test_caps_are_checked(client, shop, caps, field):
    r = await client.post(shop["url"], headers=shop["headers"], json={"caps": caps})
    assert r.status_code == 422 and r.json()["code"] == "credential_caps_invalid" and r.json()["field"] == field


async def test_caps_narrow_what_the_device_may_seal(client, shop):
    cred = await issue_credential(client, shop["headers"], shop["device"]["id"], block_size=2,
                                  caps={"invoice_types": ["FV"], "tax_groups": ["B", "A"], "max_invoice_total": "150.50"})
    assert cred["caps"] == {"invoice_types": ["FV"], "tax_groups": ["A", "B"], "max_invoice_total": "150.50"}
    r = await client.post(shop["url"], headers=shop["headers"], json={"caps": {"max_invoice_total": "0"}})
    assert r.status_code == 422
    r = await client.post(shop["url"], headers=shop["headers"],
                          json={"invoice_type": "EV", "caps": {"invoice_types": ["FV"]}})
    assert r.status_code == 422 and r.json()["code"] == "credential_caps_invalid"


async def test_idempotency_key_gives_the_same_credential_and_consumes_one_block(client, shop):
    h = {**shop["headers"], "Idempotency-Key": "cred-2026-12-07-till-1"}
    r1 = await client.post(shop["url"], headers=h, json={"block_size": 10})
    r2 = await client.post(shop["url"], headers=h, json={"block_size": 10})
    assert r1.status_code == r2.status_code == 201
    assert r2.headers.get("Idempotent-Replayed") == "true" and "Idempotent-Replayed" not in r1.headers
    assert r1.json() == r2.json()
    # One block only: the next online invoice takes number 11.
    sold = (await client.post("/v1/invoices", json=sample_invoice(shop["outlet"]["id"]), headers=shop["headers"])).json()
    assert sold["counter"] == 11
    # A replay shows the credential as it stands now.
    await client.post(f"{shop['url']}/{r1.json()['jti']}/revoke", headers=shop["headers"])
    r3 = await client.post(shop["url"], headers=h, json={"block_size": 10})
    assert r3.json()["jti"] == r1.json()["jti"] and r3.json()["status"] == "revoked"
    # The same key with another body, or for another device: refused, nothing allocated.
    r = await client.post(shop["url"], headers=h, json={"block_size": 11})
    assert r.status_code == 422 and r.json()["code"] == "idempotency_key_reused"
    other, _ = await register_device(client, shop["headers"], shop["tenant"]["id"], shop["outlet"]["id"], name="Till 2")
    r = await client.post(f"/v1/devices/{other['id']}/credentials", headers=h, json={"block_size": 10})
    assert r.status_code == 422 and r.json()["code"] == "idempotency_key_reused"
    # A key already used to seal an invoice names that request, not this one.
    used = {**shop["headers"], "Idempotency-Key": "sale-1"}
    assert (await client.post("/v1/invoices", json=sample_invoice(shop["outlet"]["id"]), headers=used)).status_code == 201
    r = await client.post(shop["url"], headers=used, json={"block_size": 10})
    assert r.status_code == 422 and r.json()["code"] == "idempotency_key_reused"
    # The service's own keys (a draft's seal) are reserved: no client may take one first.
    r = await client.post(shop["url"], headers={**shop["headers"], "Idempotency-Key": "stalela:draft:drf_x"},
                          json={"block_size": 10})
    assert r.status_code == 422 and r.json()["code"] == "idempotency_key_reserved", r.text
    sold = (await client.post("/v1/invoices", json=sample_invoice(shop["outlet"]["id"]), headers=shop["headers"])).json()
    assert sold["counter"] == 13  # 11 and 12 online: nothing was carved by the refused requests
    # Without a key, each call is a new credential.
    a = await issue_credential(client, shop["headers"], shop["device"]["id"], block_size=1)
    b = await issue_credential(client, shop["headers"], shop["device"]["id"], block_size=1)
    assert a["jti"] != b["jti"] and b["block"]["first"] == a["block"]["last"] + 1
