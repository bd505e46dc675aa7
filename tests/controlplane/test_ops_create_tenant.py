"""Registering a tenant from /ops/tenants: the same service as POST /v1/tenants (one tenant per form, however
many times it is sent), its first API key shown once, the platform audit log naming the operator; the support
role is refused, and bad input is the form again saying why."""
from __future__ import annotations

import html
import re
import secrets

import pytest
from sqlalchemy import func, select

from stalela.tenancy.context import bind_platform
from stalela.tenancy.models import Tenant
from tests.controlplane.test_operators_console import sign_in


def form_key(page: str) -> str:
    found = re.search(r'name="key" value="([^"]+)"', page)
    assert found, "no idempotency key in the form"
    return found.group(1)


@pytest.fixture
async def console(app, new_operator):
    """Factory: an operator of the given role, signed in to /ops (signed out after the test)."""
    opened = []

    async def open_as(role: str) -> tuple[dict, object]:
        op = await new_operator(role, who=role.replace("_", "-"))
        opened.append(await sign_in(app, op["email"]))
        return op, opened[-1]

    yield open_as
    for b in opened:
        await b.aclose()


async def tenants_named(app, name: str) -> int:  # noqa: ANN001
    async with app.state.db.transaction() as session:
        await bind_platform(session)
        return (await session.execute(select(func.count()).select_from(Tenant).where(Tenant.name == name))).scalar_one()


async def test_an_admin_creates_a_tenant_once_and_sees_its_key_once(app, client, operator_headers, console):
    admin, b = await console("platform_admin")
    name = f"Console Kin {secrets.token_hex(3)} SARL"
    page = (await b.get("/ops/tenants")).text
    assert 'data-testid="new-tenant"' in page and 'action="/ops/tenants"' in page
    form = {"name": name, "tax_id": "K0000001B", "jurisdiction": "CD", "vat_condition": "monotributo",
            "tier": "shared", "locale": "", "key": form_key(page)}
    r = await b.post("/ops/tenants", form)
    assert r.status_code == 201, r.text[:500]
    assert "<h1>Tenant created</h1>" in r.text
    key = re.search(r'data-testid="api-key">([^<]+)<', r.text).group(1)
    tenant_id = re.search(r'data-testid="tenant-id">([^<]+)<', r.text).group(1)
    # The key works at once, and the tenant is what the API shows: French, its jurisdiction's language;
    # the IVA condition chosen by mistake for a DRC tenant was ignored.
    outlet = await client.post("/v1/outlets", json={"code": "K1", "name": "Gombe"},
                               headers={"Authorization": f"Bearer {html.unescape(key)}"})
    assert outlet.status_code == 201, outlet.text
    got = (await client.get(f"/v1/tenants/{tenant_id}", headers=operator_headers)).json()
    assert (got["name"], got["status"], got["tier"], got["locale"], got["language"]) == \
        (name, "active", "shared", None, "fr")
    assert got.get("ar") is None

    # The same form again (a double click, a reload that re-posts): the same tenant, no key, no second one.
    again = await b.post("/ops/tenants", form)
    assert again.status_code == 200, again.text[:500]
    assert "<h1>Tenant already created</h1>" in again.text and 'data-testid="replayed"' in again.text
    assert f'data-testid="tenant-id">{tenant_id}<' in again.text and 'data-testid="api-key"' not in again.text
    assert await tenants_named(app, name) == 1
    # The same form changed and sent again: refused without a second tenant, the form ready for another.
    changed = await b.post("/ops/tenants", {**form, "tax_id": "K0000002B"})
    assert changed.status_code == 409 and 'data-testid="new-tenant-error"' in changed.text
    assert form_key(changed.text) != form["key"] and await tenants_named(app, name) == 1

    log = (await client.get("/v1/ops/audit?action=tenant.created&limit=100", headers=operator_headers)).json()
    [entry] = [e for e in log["data"] if e["target"] == tenant_id]
    assert entry["actor"] == f"operator:{admin['id']}" and entry["details"]["tier"] == "shared"

    # Without the form's CSRF token: refused, nothing made.
    other = {**form, "name": name + " bis", "key": form_key((await b.get("/ops/tenants")).text)}
    assert (await b.post("/ops/tenants", other, csrf=False)).status_code == 403
    assert await tenants_named(app, name + " bis") == 0


async def test_an_argentine_tenant_in_english(client, operator_headers, console):
    _, b = await console("platform_admin")
    page = (await b.get("/ops/tenants")).text
    r = await b.post("/ops/tenants", {"name": f"Consola {secrets.token_hex(3)} SRL", "tax_id": "30-71234567-1",
                                      "jurisdiction": "AR", "vat_condition": "responsable_inscripto",
                                      "tier": "shared", "locale": "en", "key": form_key(page)})
    assert r.status_code == 201, r.text[:800]
    tenant_id = re.search(r'data-testid="tenant-id">([^<]+)<', r.text).group(1)
    got = (await client.get(f"/v1/tenants/{tenant_id}", headers=operator_headers)).json()
    assert (got["tax_id"], got["ar"], got["locale"], got["language"]) == \
        ("30712345671", {"vat_condition": "responsable_inscripto"}, "en", "en")
    row = (await b.get("/ops/tenants")).text.split(f"<code>{tenant_id}</code>")[1].split("</tr>")[0]
    assert f'data-testid="language-{tenant_id}">English<' in row


async def test_support_may_not_create_a_tenant(app, console):
    _, b = await console("support")
    name = f"Refused {secrets.token_hex(3)} SARL"
    page = (await b.get("/ops/tenants")).text
    assert 'data-testid="new-tenant"' not in page and 'name="key"' not in page
    r = await b.post("/ops/tenants", {"name": name, "tax_id": "R1", "jurisdiction": "CD", "tier": "shared",
                                      "key": "abcdefabcdef"})
    assert r.status_code == 403 and "read-only" in r.text
    assert await tenants_named(app, name) == 0


async def test_bad_input_is_the_form_again_saying_why(app, console):
    _, b = await console("platform_admin")
    name = f"Faulty {secrets.token_hex(3)} SARL"
    good = {"name": name, "tax_id": "F0000001B", "jurisdiction": "CD", "tier": "shared", "locale": ""}
    cases = [
        ({"name": ""}, "name", None),
        ({"name": "N" * 201}, "name", None),
        ({"tax_id": "has spaces"}, "tax_id", None),
        ({"jurisdiction": "ZZ"}, "jurisdiction", None),
        ({"tier": "weird"}, "tier", None),
        ({"locale": "de"}, "locale", "invalid_locale"),
        ({"jurisdiction": "AR", "tax_id": "30712345671"}, "ar.vat_condition", "vat_condition_required"),
        ({"jurisdiction": "AR", "tax_id": "30712345670", "vat_condition": "monotributo"}, "tax_id", "tax_id_invalid"),
        ({"key": ""}, None, "form_expired"),
    ]
    for change, field, code in cases:
        page = (await b.get("/ops/tenants")).text
        typed = {**good, "key": form_key(page), **change}
        r = await b.post("/ops/tenants", typed)
        assert r.status_code == 422, (change, r.status_code, r.text[:300])
        assert 'data-testid="new-tenant-error"' in r.text  # beside the form, which stays open
        assert '<details class="card" data-testid="new-tenant" open>' in r.text
        if code:
            assert f'data-code="{code}"' in r.text, (change, code)
        if field in ("name", "tax_id", "locale", "jurisdiction", "ar.vat_condition"):
            assert 'aria-invalid="true" aria-describedby="new-tenant-error"' in r.text, change
        if "name" in change and change["name"]:
            assert f'value="{change["name"]}"' in r.text  # what was typed is kept
    assert await tenants_named(app, name) == 0
    # In French (chosen with ?lang=, remembered by the browser), the field's name and the reason are French.
    page = (await b.get("/ops/tenants?lang=fr")).text
    r = await b.post("/ops/tenants", {**good, "locale": "de", "key": form_key(page)})
    assert r.status_code == 422
    error = html.unescape(r.text.split('data-code="invalid_locale">')[1].split("</p>")[0])
    assert error == ("<strong>Langue</strong>\u00a0: "  # the field's name, then the reason, both French
                     "valeurs possibles\u00a0: fr, es, en, ou null (la langue par défaut)"), error
