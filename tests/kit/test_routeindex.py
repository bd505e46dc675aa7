"""The routers' guards (kit/routeindex.py) skip only routers that would not have matched: for every
route's path, odd paths and every method, the app picks the same router, with the same kind of
match, as FastAPI's own matching without the guards."""
from __future__ import annotations

import re

import pytest
from starlette.routing import Match

from stalela.app import create_app
from stalela.kit import routeindex
from stalela.kit.openapi import all_routes
from tests.conftest import make_settings

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
ODD = ["/", "", "/v1", "/v1/", "/v1/invoices/", "/v1/invoices/batch/", "/nope", "/static/dashboard/a/b",
       "/app", "/app/", "/ops/", "/_bench/noop/", "/verify/", "/verify/inv_1/qr.svg/x", "/metrics/", "//v1/invoices"]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("routes")
    return create_app(make_settings(f"sqlite:///{tmp / 'unused.db'}", tmp, bench_endpoints=True))


def _paths(app) -> list[str]:
    paths = set(ODD)
    for route in all_routes(app):
        template = getattr(route, "path_format", None) or getattr(route, "path", "")
        concrete = re.sub(r"{[^}]+}", "x_1", template)
        paths |= {concrete, concrete + "/", concrete.rstrip("/") or "/", template}
    return sorted(paths)


def _decision(app, scope: dict, guarded: bool) -> tuple:
    """Which top-level route FastAPI's router would run, and how: the first FULL match, else the first PARTIAL."""
    partial = None
    for index, route in enumerate(app.router.routes):
        match, _ = route.matches(scope) if guarded else type(route).matches(route, scope)
        if match is Match.FULL:
            return ("full", index)
        if match is Match.PARTIAL and partial is None:
            partial = ("partial", index)
    return partial or ("none", None)


def test_the_guards_decide_as_fastapi_does(app):
    compared = 0
    for path in _paths(app):
        for root_path in ("", "/api"):
            for method in METHODS:
                scope = {"type": "http", "method": method, "path": root_path + path, "root_path": root_path,
                         "headers": [], "query_string": b""}
                assert _decision(app, dict(scope), True) == _decision(app, dict(scope), False), (method, path, root_path)
                compared += 1
    assert compared > 1000


def test_every_included_router_is_guarded_where_fastapi_keeps_them(app):
    fastapi_routing = pytest.importorskip("fastapi.routing")
    if not hasattr(fastapi_routing, "_IncludedRouter"):
        pytest.skip("this FastAPI copies included routes into the app: nothing to guard")
    included = [r for r in app.router.routes if isinstance(r, fastapi_routing._IncludedRouter)]
    assert included and all("matches" in vars(r) for r in included)
    assert routeindex.install(app) == 0  # installed by create_app, once


async def test_requests_are_still_routed(_sqlite_url, tmp_path):
    import httpx

    app = create_app(make_settings(_sqlite_url, tmp_path, bench_endpoints=True))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.post("/_bench/noop", json={"a": 1})).json() == {"ok": True, "size": 1}
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/v1/nope")).json()["code"] == "not_found"
            wrong = await client.delete("/v1/invoices")
            assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, POST"
            assert (await client.post("/v1/invoices", json={})).status_code == 401
