"""A `starting_after` cursor must name an object of the list it pages (issue 23, item 8): an unknown id, another
tenant's, or one of another list is `400 invalid_cursor` (`field: starting_after`), never silently ignored (a
client would page from the start forever). Lists filtered on a changing state check the cursor against the
unfiltered collection, so an object that changed state since the previous page still pages on."""
from __future__ import annotations

import pytest

from tests.support.invoices import sample_invoice

URL = "https://hooks.example.com/stalela"


def _refused(r) -> None:  # noqa: ANN001
    assert r.status_code == 400, r.text
    body = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert (body["code"], body["field"]) == ("invalid_cursor", "starting_after"), body


async def _tenant_with_data(client, new_tenant, name: str, tax_id: str) -> dict:  # noqa: ANN001
    tenant, headers = await new_tenant(name, tax_id)
    outlets = []
    for code in ("A1", "A2"):
        r = await client.post("/v1/outlets", json={"code": code, "name": code}, headers=headers)
        assert r.status_code == 201, r.text
        outlets.append(r.json()["id"])
    invoices = []
    for _ in range(2):
        r = await client.post("/v1/invoices", json=sample_invoice(outlets[0]), headers=headers)
        assert r.status_code == 201, r.text
        invoices.append(r.json()["id"])
    endpoints, messages = [], []
    for _ in range(2):
        r = await client.post("/v1/webhook-endpoints", json={"url": URL}, headers=headers)
        assert r.status_code == 201, r.text
        endpoints.append(r.json()["id"])
        r = await client.post(f"/v1/webhook-endpoints/{endpoints[-1]}/test", headers=headers)
        assert r.status_code == 201, r.text
        messages.append(r.json()["id"])
    return {"tenant": tenant, "headers": headers, "outlets": outlets, "invoices": invoices,
            "endpoints": endpoints, "messages": messages}


async def test_a_cursor_of_no_object_of_the_list_is_refused(client, new_tenant, operator_headers):
    a = await _tenant_with_data(client, new_tenant, "Curseur A SARL", "C1000001A")
    b = await _tenant_with_data(client, new_tenant, "Curseur B SARL", "C1000002B")
    ha = a["headers"]

    # A valid cursor pages on: the second outlet after the first.
    first = (await client.get("/v1/outlets", params={"limit": 1}, headers=ha)).json()
    r = await client.get("/v1/outlets", params={"limit": 1, "starting_after": first["data"][0]["id"]}, headers=ha)
    assert r.status_code == 200 and len(r.json()["data"]) == 1 and r.json()["has_more"] is False

    e1, e2 = a["endpoints"]
    cases = [
        ("/v1/invoices", "inv_00000000000000000000000000"),        # unknown
        ("/v1/invoices", b["invoices"][0]),                        # another tenant's
        ("/v1/outlets", b["outlets"][0]),                          # another tenant's
        ("/v1/outlets", a["invoices"][0]),                         # another list's
        ("/v1/api-keys", a["outlets"][0]),                         # another list's
        ("/v1/webhook-endpoints", b["endpoints"][0]),              # another tenant's
        (f"/v1/webhook-endpoints/{e1}/messages", a["messages"][1]),  # another endpoint's message
        (f"/v1/webhook-endpoints/{e1}/messages/{a['messages'][0]}/attempts", "wha_unknown"),
        ("/v1/users", "usr_unknown"),
        ("/v1/usage/events", b["invoices"][0]),
        ("/v1/z-reports", a["invoices"][0]),
        ("/v1/ledger/checkpoints", "chk_unknown"),
        ("/v1/privacy/exports", "pex_unknown"),
    ]
    for path, cursor in cases:
        r = await client.get(path, params={"starting_after": cursor}, headers=ha)
        assert r.status_code == 400, (path, cursor, r.status_code, r.text)
        _refused(r)
    # The object itself, on its own list, is fine.
    for path, cursor in [("/v1/invoices", a["invoices"][1]), (f"/v1/webhook-endpoints/{e2}/messages", a["messages"][1])]:
        r = await client.get(path, params={"starting_after": cursor}, headers=ha)
        assert r.status_code == 200, (path, r.text)

    # A key restricted to the second outlet: the first outlet's invoices are not in its list, so not cursors.
    r = await client.post("/v1/api-keys", json={"name": "till 2", "outlet_id": a["outlets"][1]}, headers=ha)
    assert r.status_code == 201, r.text
    till = {"Authorization": f"Bearer {r.json()['api_key']}"}
    _refused(await client.get("/v1/invoices", params={"starting_after": a["invoices"][1]}, headers=till))

    # The operator's lists: a tenant id pages the registry, an outlet id does not.
    r = await client.get("/v1/tenants", params={"starting_after": a["tenant"]["id"]}, headers=operator_headers)
    assert r.status_code == 200, r.text
    for path, cursor in [("/v1/tenants", a["outlets"][0]), ("/v1/tenants", "ten_unknown"),
                         ("/v1/ops/outbox/dead", "evt_unknown"), ("/v1/operators", a["tenant"]["id"]),
                         (f"/v1/tenants/{a['tenant']['id']}/moves", "mov_unknown")]:
        r = await client.get(path, params={"starting_after": cursor}, headers=operator_headers)
        assert r.status_code == 400, (path, cursor, r.status_code, r.text)
        _refused(r)


async def test_an_object_that_left_a_filtered_list_is_still_a_cursor(client, new_tenant):
    """A message delivered (or failed) since the previous page, an endpoint deleted: still objects of the list."""
    a = await _tenant_with_data(client, new_tenant, "Filtre SARL", "C1000003C")
    ha, (e1, _) = a["headers"], a["endpoints"]
    message = a["messages"][0]
    r = await client.get(f"/v1/webhook-endpoints/{e1}/messages", params={"status": "failed", "starting_after": message},
                         headers=ha)
    assert r.status_code == 200 and r.json()["data"] == [], r.text
    deleted = a["endpoints"][1]
    assert (await client.delete(f"/v1/webhook-endpoints/{deleted}", headers=ha)).status_code in (200, 204)
    r = await client.get("/v1/webhook-endpoints", params={"starting_after": deleted}, headers=ha)
    assert r.status_code == 200 and [e["id"] for e in r.json()["data"]] == [e1], r.text


@pytest.mark.parametrize("path", ["/v1/invoices", "/v1/tenants", "/v1/ops/outbox/dead", "/v1/usage/events"])
async def test_the_openapi_document_lists_invalid_cursor(app, path):
    op = app.openapi()["paths"][path]["get"]
    assert "400" in op["responses"] and "invalid_cursor" in op["responses"]["400"]["description"]
