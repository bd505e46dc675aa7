"""The OpenAPI document describes every answer (issue 24, item 8): errors as problem+json with the Problem
schema, derived from what each route depends on, and the non-JSON media types; 405 lists the path's methods."""
from __future__ import annotations

from stalela.kit.openapi import all_routes

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def _operations(spec):
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            yield path, method.upper(), op


async def test_every_error_answer_is_problem_json_and_follows_from_the_route(app):
    spec = app.openapi()
    assert "Problem" in spec["components"]["schemas"] and "HTTPValidationError" not in spec["components"]["schemas"]
    for path, method, op in _operations(spec):
        statuses = {int(s) for s in op["responses"]}
        for status in statuses - {503} if path == "/readyz" else statuses:
            if status >= 400:
                content = dict(op["responses"][str(status)]["content"])
                if path.startswith("/verify/") and status == 404:
                    content.pop("text/html", None)  # the visitor's "not known" page, beside the problem
                assert content == PROBLEM, (method, path, status)
        where = f"{method} {path}"
        if op.get("security"):  # authenticated: credentials can be missing or wrong
            assert 401 in statuses, where
        if "requestBody" in op:
            assert {400, 413, 415, 422} <= statuses, where
        if method in ("POST", "PUT", "PATCH"):
            assert {413, 415} <= statuses, where  # the body guard runs before routing
        if "{" in path:
            assert {404, 422} <= statuses, where
        if path.startswith("/v1/") and not path.startswith(("/v1/tenants", "/v1/ops", "/v1/operators", "/v1/auth", "/v1/keys")) \
                and op.get("security") and path != "/v1/users/accept":
            assert {403, 429, 503} <= statuses, where


async def test_tenant_routes_document_their_rate_limit_and_permission_answers(app):
    op = app.openapi()["paths"]["/v1/invoices"]["post"]
    assert {"400", "401", "403", "409", "413", "415", "422", "429", "503"} <= set(op["responses"])


async def test_files_and_pages_document_their_media_types(app):
    paths = app.openapi()["paths"]

    def media(path: str, method: str = "get") -> set[str]:
        return set(paths[path][method]["responses"]["200"]["content"])

    assert media("/v1/invoices/{invoice_id}/pdf") == {"application/pdf"}
    assert media("/verify/{invoice_id}/qr.svg") == {"image/svg+xml"}
    assert media("/verify/{invoice_id}") == {"text/html", "application/json"}
    # A visitor's "not known" page is HTML; a JSON client's, problem+json (docs/verification.md).
    for page in ("/verify/{invoice_id}", "/verify/z/{z_report_id}"):
        assert set(paths[page]["get"]["responses"]["404"]["content"]) == {"text/html", "application/problem+json"}
    assert media("/v1/exports/{export_id}/download") == {"application/gzip"}
    sheet = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    for report in ("/v1/z-reports/{z_report_id}", "/v1/outlets/{outlet_id}/x-report", "/v1/a-reports"):
        assert media(report) == {"application/json", "application/pdf", "text/csv", sheet}, report


async def test_a_405_allows_every_method_of_the_path_template(client):
    for path, allowed in [("/v1/tenants", "GET, POST"), ("/v1/outlets/out_1", "GET, PATCH"),
                          ("/v1/exports/audit", "POST"), ("/v1/exports/exp_1", "GET")]:
        r = await client.request("OPTIONS", path)
        assert r.status_code == 405 and r.headers["allow"] == allowed, (path, r.headers.get("allow"))
        assert r.json()["code"] == "method_not_allowed"


def _documented(app, method: str, path: str, status: int) -> bool:
    """Whether the document lists ``status`` for the route that serves ``method path``."""
    spec = app.openapi()
    for route in all_routes(app):
        if method in getattr(route, "methods", ()) and route.path_regex.match(path):
            return str(status) in spec["paths"][route.path_format][method.lower()]["responses"]
    raise AssertionError(f"no route serves {method} {path}")


async def test_answers_found_beyond_the_shared_parts_are_documented(app, client, new_tenant, operator_headers):
    """Answers a service gives on its own (not through a dependency) must be declared by its route; these
    were missing (issue 24 review). The fuzz test's tenant without a checkpoint finds the next such one."""
    tenant, key = await new_tenant("Empty Log SARL", "E1234567Z")
    r = await client.get("/v1/ledger/checkpoints/latest", headers=key)  # nothing signed yet
    assert r.status_code == 404 and r.json()["code"] == "checkpoint_not_found", r.text
    assert _documented(app, "GET", "/v1/ledger/checkpoints/latest", 404)

    inv = (await client.post("/v1/users/invitations", json={"email": "late@empty.cd", "name": "Late",
                                                            "role": "cashier"}, headers=key)).json()
    assert (await client.post(f"/v1/tenants/{tenant['id']}/suspend", headers=operator_headers)).status_code == 200
    r = await client.post("/v1/users/accept", json={"token": inv["token"], "password": "correct horse battery staple"})
    assert r.status_code == 403 and r.json()["code"] == "tenant_suspended", r.text
    assert _documented(app, "POST", "/v1/users/accept", 403)
    # Read from the database outside the request's session: an outage there is a 503 too.
    assert _documented(app, "GET", "/v1/auth/jwks.json", 503)
