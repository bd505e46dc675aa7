"""One code for bad credentials everywhere (issue 23, item 8): whatever the credential (an API key, a user's
access or refresh token, the operator token) and wherever it is sent, one that is not valid there answers
`401 invalid_credentials`. The operator token on a tenant route used to answer `invalid_token`."""
from __future__ import annotations

import base64
import json
import re

from stalela.auth.dependencies import _operator_principal
from stalela.kit.openapi import _dependants, all_routes
from tests.conftest import OPERATOR_TOKEN

FORGED_JWT = ".".join(base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=") for part in (
    {"alg": "RS256", "kid": "ak_forged", "typ": "JWT"}, {"sub": "usr_1", "tenant_id": "ten_1", "exp": 4102444800})
) + ".c2lnbmF0dXJl"


def _secured_routes(app):  # noqa: ANN001
    """(method, concrete path, is_operator_route) of every authenticated operation of the document."""
    spec = app.openapi()
    operator_paths = set()
    for route in all_routes(app):
        dependant = getattr(route, "dependant", None)
        if dependant is not None and any(dep.call is _operator_principal for dep in _dependants(dependant)):
            operator_paths.add(route.path_format)
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if op.get("security"):
                yield method.upper(), re.sub(r"\{[^}]+\}", "x_1", path), path in operator_paths


def _invalid(r, where) -> None:  # noqa: ANN001
    assert r.status_code == 401, (where, r.status_code, r.text)
    assert r.json()["code"] == "invalid_credentials", (where, r.text)
    assert r.headers["content-type"].startswith("application/problem+json"), where


async def test_every_bad_credential_on_every_route_is_invalid_credentials(app, client, new_tenant):
    _, key_headers = await new_tenant("Clefs SARL", "K1000001A")
    wrong_everywhere = {
        "unknown API key": "Bearer sk_" + "a" * 52,
        "malformed API key": "Bearer sk_short",
        "forged access token": f"Bearer {FORGED_JWT}",
        "garbage": "Bearer not-a-token",
        "not Bearer": "Basic dXNlcjpwYXNz",
    }
    routes = list(_secured_routes(app))
    assert sum(op for *_, op in routes) >= 10 and sum(not op for *_, op in routes) >= 50  # both kinds walked
    for method, path, operator_route in routes:
        wrong = dict(wrong_everywhere)
        if operator_route:
            wrong["a valid API key on an operator route"] = key_headers["Authorization"]
        else:
            wrong["the operator token on a tenant route"] = f"Bearer {OPERATOR_TOKEN}"
        for what, authorization in wrong.items():
            kw = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
            r = await client.request(method, path, headers={"Authorization": authorization}, **kw)
            _invalid(r, (what, method, path))


async def test_tokens_of_the_sign_in_flow_share_the_code(client):
    r = await client.post("/v1/auth/refresh", json={"refresh_token": "rt_" + "b" * 40})
    _invalid(r, "unknown refresh token")
    r = await client.get("/v1/invoices")
    assert r.status_code == 401 and r.json()["code"] == "missing_credentials"


async def test_the_operator_token_on_a_tenant_route_says_what_it_is_not(client):
    r = await client.get("/v1/outlets", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
    _invalid(r, "operator token")
    assert "API key" in r.json()["detail"] and "access token" in r.json()["detail"]
