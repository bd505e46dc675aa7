"""Languages in the operator API: a tenant's ``locale`` (its default language, null: its jurisdiction's) and
an operator's own ``locale`` (the console's language, null: the browser's); anything else is a 422
``invalid_locale`` naming the field."""
from __future__ import annotations

CD = {"name": "Langues SARL", "tax_id": "L0000001B", "jurisdiction": "CD"}
AR = {"name": "Idiomas SRL", "tax_id": "30712345671", "jurisdiction": "AR",
      "ar": {"vat_condition": "responsable_inscripto"}}


def _invalid_locale(r) -> None:  # noqa: ANN001
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["code"] == "invalid_locale" and problem["field"] == "locale", problem


async def test_a_tenant_is_born_with_a_language_and_changes_it(client, operator_headers):
    # No locale: the jurisdiction's language (French for the DRC, Spanish for Argentina).
    r = await client.post("/v1/tenants", json=CD, headers=operator_headers)
    assert r.status_code == 201, r.text
    cd = r.json()["tenant"]
    assert cd["locale"] is None and cd["language"] == "fr"
    r = await client.post("/v1/tenants", json=AR, headers=operator_headers)
    assert r.status_code == 201, r.text
    assert (r.json()["tenant"]["locale"], r.json()["tenant"]["language"]) == (None, "es")
    # A chosen one wins over the jurisdiction's.
    r = await client.post("/v1/tenants", json={**CD, "locale": "en"}, headers=operator_headers)
    assert r.status_code == 201 and (r.json()["tenant"]["locale"], r.json()["tenant"]["language"]) == ("en", "en")

    tenant_id = cd["id"]
    r = await client.patch(f"/v1/tenants/{tenant_id}", json={"locale": "es"}, headers=operator_headers)
    assert r.status_code == 200 and (r.json()["locale"], r.json()["language"]) == ("es", "es"), r.text
    got = (await client.get(f"/v1/tenants/{tenant_id}", headers=operator_headers)).json()
    assert (got["locale"], got["language"], got["name"]) == ("es", "es", CD["name"])
    listed = (await client.get("/v1/tenants?jurisdiction=CD&limit=100", headers=operator_headers)).json()["data"]
    assert any(t["id"] == tenant_id and t["language"] == "es" for t in listed)
    # A PATCH without locale keeps it; null gives the jurisdiction's back.
    r = await client.patch(f"/v1/tenants/{tenant_id}", json={"name": "Langues RDC SARL"}, headers=operator_headers)
    assert r.status_code == 200 and r.json()["locale"] == "es"
    r = await client.patch(f"/v1/tenants/{tenant_id}", json={"locale": None}, headers=operator_headers)
    assert r.status_code == 200 and (r.json()["locale"], r.json()["language"]) == (None, "fr")
    audit = (await client.get("/v1/ops/audit?action=tenant.updated&limit=100", headers=operator_headers)).json()
    changes = [e["details"] for e in audit["data"] if e["target"] == tenant_id]
    assert {"locale": None} in changes and {"locale": "es"} in changes


async def test_an_unknown_language_is_refused_naming_the_field(client, operator_headers):
    tenant = (await client.post("/v1/tenants", json=CD, headers=operator_headers)).json()["tenant"]
    for locale in ("de", "", "FR", "fr-CD"):  # the three languages shipped, spelled as the API spells them
        _invalid_locale(await client.post("/v1/tenants", json={**CD, "locale": locale}, headers=operator_headers))
        _invalid_locale(await client.patch(f"/v1/tenants/{tenant['id']}", json={"locale": locale},
                                           headers=operator_headers))
    for locale in (7, "x" * 40, ["fr"]):  # not even a language tag: the schema's own 422, naming the field
        r = await client.patch(f"/v1/tenants/{tenant['id']}", json={"locale": locale}, headers=operator_headers)
        assert r.status_code == 422 and r.json()["field"] == "locale", r.text
    got = (await client.get(f"/v1/tenants/{tenant['id']}", headers=operator_headers)).json()
    assert got["locale"] is None and got["language"] == "fr"  # nothing changed


async def test_an_operator_chooses_the_consoles_language(client, operator_headers, new_operator):
    op = await new_operator("support", who="polyglot")
    assert op["locale"] is None
    r = await client.patch(f"/v1/operators/{op['id']}", json={"locale": "fr"}, headers=operator_headers)
    assert r.status_code == 200 and r.json()["locale"] == "fr", r.text
    assert (await client.get(f"/v1/operators/{op['id']}", headers=operator_headers)).json()["locale"] == "fr"
    # Other changes keep it; null is the browser's language again.
    r = await client.patch(f"/v1/operators/{op['id']}", json={"name": "Polyglotte"}, headers=operator_headers)
    assert r.status_code == 200 and r.json()["locale"] == "fr"
    _invalid_locale(await client.patch(f"/v1/operators/{op['id']}", json={"locale": "pt"}, headers=operator_headers))
    assert (await client.get(f"/v1/operators/{op['id']}", headers=operator_headers)).json()["locale"] == "fr"
    r = await client.patch(f"/v1/operators/{op['id']}", json={"locale": None}, headers=operator_headers)
    assert r.status_code == 200 and r.json()["locale"] is None
    log = (await client.get("/v1/ops/audit?action=operator.updated&limit=100", headers=operator_headers)).json()
    assert {"locale": "fr"} in [e["details"] for e in log["data"] if e["target"] == op["id"]]
    # Only the operator API's callers (the static token) use this route: a tenant's key is refused.
    assert (await client.patch(f"/v1/operators/{op['id']}", json={"locale": "es"},
                               headers={"Authorization": "Bearer sk_nope"})).status_code == 401
