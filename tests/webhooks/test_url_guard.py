"""Webhook URLs at save time, with the production policy: what would break or misdirect every delivery
later (a host that is no valid IDNA name, control characters, non-ASCII paths, private addresses) is a
422 on ``url`` now, and nothing is saved, so nothing is ever delivered there."""
from __future__ import annotations

import pytest

from stalela.kit import netguard


@pytest.fixture
async def tenant_key(client, new_tenant):
    _, headers = await new_tenant("Hooks SARL", "H1")
    return headers


@pytest.mark.parametrize("url, code", [
    ("https://☃.example/hook", "webhook_url_invalid"),  # a symbol: no valid IDNA name
    ("https://exa mple.com/hook", "webhook_url_invalid"),
    ("https://example.com/\r\nX-Injected: 1", "webhook_url_invalid"),
    ("https://example.com/caf\u00e9", "webhook_url_invalid"),
    ("https://xn--.example/hook", "webhook_url_invalid"),
    ("https://a..b.example/hook", "webhook_url_invalid"),
    ("https://-bad-.example/hook", "webhook_url_invalid"),
    ("http://example.com/hook", "webhook_url_not_https"),
    ("https://127.0.0.1/hook", "webhook_url_forbidden"),
    ("https://[::ffff:169.254.169.254]/hook", "webhook_url_forbidden"),
    ("https://[fd00:ec2::254]/hook", "webhook_url_forbidden"),
    ("https://printer.localhost/hook", "webhook_url_forbidden"),
])
async def test_urls_that_cannot_be_delivered_safely_are_422_at_save(client, tenant_key, url, code):
    r = await client.post("/v1/webhook-endpoints", json={"url": url}, headers=tenant_key)
    assert r.status_code == 422, r.text
    assert (r.json()["code"], r.json()["field"]) == (code, "url"), r.json()
    assert (await client.get("/v1/webhook-endpoints", headers=tenant_key)).json()["data"] == []


async def test_an_internationalized_host_is_stored_idna_encoded(client, tenant_key):
    r = await client.post("/v1/webhook-endpoints", json={"url": "https://Bücher.example/hooks?src=stalela"},
                          headers=tenant_key)
    assert r.status_code == 201, r.text
    assert r.json()["url"] == "https://xn--bcher-kva.example/hooks?src=stalela"
    r = await client.patch(f"/v1/webhook-endpoints/{r.json()['id']}", json={"url": "https://☃.example/"},
                           headers=tenant_key)
    assert r.status_code == 422 and r.json()["code"] == "webhook_url_invalid"


async def test_the_dns_lookup_runs_before_the_request_holds_a_connection(app, client, tenant_key, monkeypatch):
    """The save-time lookup may take 3 s. Inside the request's transaction it would hold SQLite's write
    lock (taken by the transaction's first statement) or a pooled PostgreSQL connection meanwhile: the
    routes authenticate apart and vet the URL before that transaction starts."""
    held = []

    async def resolve(host: str, port: int) -> list[str]:  # the network's answer; the database is real
        held.append(app.state.db.engine.pool.checkedout())
        return ["93.184.215.14"]

    monkeypatch.setattr(netguard, "_resolve", resolve)
    r = await client.post("/v1/webhook-endpoints", json={"url": "https://hooks.example/a"}, headers=tenant_key)
    assert r.status_code == 201, r.text
    r = await client.patch(f"/v1/webhook-endpoints/{r.json()['id']}", json={"url": "https://hooks.example/b"},
                           headers=tenant_key)
    assert r.status_code == 200 and r.json()["url"] == "https://hooks.example/b", r.text
    r = await client.patch(f"/v1/webhook-endpoints/{r.json()['id']}", json={"description": "no URL, no lookup"},
                           headers=tenant_key)
    assert r.status_code == 200, r.text
    assert held == [0, 0]  # each URL resolved once (the service trusts the vetted value), no connection held
