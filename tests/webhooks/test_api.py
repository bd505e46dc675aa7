"""The endpoints API on both databases: CRUD, secrets shown once, URL safety, permissions."""
from __future__ import annotations

import base64

import pytest
from sqlalchemy import select

from stalela.tenancy.context import bind_platform
from stalela.webhooks.models import WebhookEndpoint
from stalela.webhooks.transport import parse_retry_after

URL = "https://hooks.example.com/stalela"


async def test_endpoint_lifecycle(app, client, new_tenant):
    _, headers = await new_tenant()
    r = await client.post("/v1/webhook-endpoints", json={"url": URL, "description": "ERP", "event_types": [
        "invoice.sealed", "report.z_closed"]}, headers=headers)
    assert r.status_code == 201, r.text
    created = r.json()
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    assert created["enabled"] is True and created["event_types"] == ["invoice.sealed", "report.z_closed"]
    eid = created["id"]

    listed = await client.get("/v1/webhook-endpoints", headers=headers)
    assert [e["id"] for e in listed.json()["data"]] == [eid] and secret not in listed.text
    got = await client.get(f"/v1/webhook-endpoints/{eid}", headers=headers)
    assert got.status_code == 200 and "secret" not in got.json()

    r = await client.patch(f"/v1/webhook-endpoints/{eid}", json={"event_types": None, "enabled": False},
                           headers=headers)
    assert r.status_code == 200 and r.json()["event_types"] is None
    assert r.json()["enabled"] is False and r.json()["disabled_reason"] == "manual"
    assert (await client.post(f"/v1/webhook-endpoints/{eid}/test", headers=headers)).status_code == 409
    r = await client.patch(f"/v1/webhook-endpoints/{eid}", json={"enabled": True}, headers=headers)
    assert r.json()["enabled"] is True and r.json()["disabled_reason"] is None
    assert (await client.patch(f"/v1/webhook-endpoints/{eid}", json={"url": None}, headers=headers)).status_code == 422

    rotated = await client.post(f"/v1/webhook-endpoints/{eid}/rotate-secret", json={"grace_seconds": 0},
                                headers=headers)
    assert rotated.status_code == 200 and rotated.json()["secret"] != secret
    assert rotated.json()["previous_secret_expires_at"] is None

    async with app.state.db.transaction(readonly=True) as session:  # stored encrypted, never in clear
        await bind_platform(session)
        row = (await session.execute(select(WebhookEndpoint).where(WebhookEndpoint.id == eid))).scalar_one()
        assert secret.encode() not in row.secret_encrypted
        assert rotated.json()["secret"].encode() not in row.secret_encrypted

    test = await client.post(f"/v1/webhook-endpoints/{eid}/test", headers=headers)
    assert test.status_code == 201, test.text
    msg = test.json()
    assert msg["id"].startswith("msg_") and msg["payload"]["type"] == "webhook.test"
    page = (await client.get(f"/v1/webhook-endpoints/{eid}/messages", headers=headers)).json()
    assert [m["id"] for m in page["data"]] == [msg["id"]]
    one = await client.get(f"/v1/webhook-endpoints/{eid}/messages/{msg['id']}", headers=headers)
    assert one.json()["status"] == "pending"
    attempts = await client.get(f"/v1/webhook-endpoints/{eid}/messages/{msg['id']}/attempts", headers=headers)
    assert attempts.json() == {"data": [], "has_more": False}
    assert (await client.get(f"/v1/webhook-endpoints/{eid}/messages", params={"status": "nope"},
                             headers=headers)).status_code == 422
    r = await client.post(f"/v1/webhook-endpoints/{eid}/recover",
                          json={"since": "2030-01-01T00:00:00Z", "until": "2029-01-01T00:00:00Z"}, headers=headers)
    assert r.status_code == 422 and r.json()["code"] == "recover_window_empty"
    r = await client.post(f"/v1/webhook-endpoints/{eid}/recover", json={"since": "2020-01-01T00:00:00"},
                          headers=headers)
    assert r.status_code == 422  # a time without its offset is ambiguous

    assert (await client.delete(f"/v1/webhook-endpoints/{eid}", headers=headers)).status_code == 204
    assert (await client.get(f"/v1/webhook-endpoints/{eid}", headers=headers)).status_code == 404
    assert (await client.get(f"/v1/webhook-endpoints/{eid}/messages", headers=headers)).status_code == 404
    assert (await client.get("/v1/webhook-endpoints", headers=headers)).json()["data"] == []
    one = await client.get(f"/v1/webhook-endpoints/{eid}/messages/{msg['id']}", headers=headers)
    assert one.status_code == 404


@pytest.mark.parametrize("url, code", [
    ("http://hooks.example.com/x", "webhook_url_not_https"),
    ("https://127.0.0.1/x", "webhook_url_forbidden"),
    ("https://10.1.2.3/x", "webhook_url_forbidden"),
    ("https://169.254.169.254/latest/meta-data", "webhook_url_forbidden"),
    ("https://[::1]:8443/x", "webhook_url_forbidden"),
    ("https://[::ffff:127.0.0.1]/x", "webhook_url_forbidden"),
    ("https://localhost/x", "webhook_url_forbidden"),
    ("https://metadata.google.internal/computeMetadata/v1/", "webhook_url_forbidden"),
    ("https://user:pass@hooks.example.com/x", "webhook_url_invalid"),
    ("ftp://hooks.example.com/x", "webhook_url_invalid"),
    ("https://hooks.example.com:99999/x", "webhook_url_invalid"),
    ("not a url", "webhook_url_invalid"),
])
async def test_unsafe_urls_are_refused(client, new_tenant, url, code):
    _, headers = await new_tenant()
    r = await client.post("/v1/webhook-endpoints", json={"url": url}, headers=headers)
    assert r.status_code == 422 and r.json()["code"] == code and r.json()["field"] == "url", r.text


async def test_inputs_are_checked(client, new_tenant):
    _, headers = await new_tenant()
    for body in ({"url": URL, "event_types": ["invoice.voided"]}, {"url": URL, "event_types": []},
                 {"url": URL, "event_types": ["invoice.sealed", "invoice.sealed"]}, {"url": URL, "secret": "x"},
                 {"url": URL, "event_types": ["webhook.test"]}):
        r = await client.post("/v1/webhook-endpoints", json=body, headers=headers)
        assert r.status_code == 422, (body, r.text)
    r = await client.post("/v1/webhook-endpoints", json={"url": URL}, headers=headers)
    eid = r.json()["id"]
    r = await client.post(f"/v1/webhook-endpoints/{eid}/rotate-secret", json={"grace_seconds": 10**9}, headers=headers)
    assert r.status_code == 422


async def test_a_till_key_cannot_manage_webhooks(client, new_tenant):
    _, headers = await new_tenant()
    outlet = (await client.post("/v1/outlets", json={"code": "T1", "name": "Till"}, headers=headers)).json()
    till = (await client.post("/v1/api-keys", json={"name": "till", "outlet_id": outlet["id"]}, headers=headers)).json()
    till_headers = {"Authorization": f"Bearer {till['api_key']}"}
    assert (await client.post("/v1/webhook-endpoints", json={"url": URL}, headers=till_headers)).status_code == 403
    assert (await client.get("/v1/webhook-endpoints", headers=till_headers)).status_code == 403
    assert (await client.get("/v1/webhook-endpoints")).status_code == 401


def test_retry_after_values():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("999999") == 86400.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: at once
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
