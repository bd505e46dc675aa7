"""The OpenAPI document's error answers, derived from what each route is made of.

FastAPI documents only a route's success and its 422 (as ``application/json`` with its own schema). Our
errors are ``application/problem+json`` and come from shared parts: the body (400, 413, 415, 422),
parameters (422), a path id (404), the database (503) and the dependencies that authenticate, rate-limit
and authorise (401, 403, 429). Each such dependency declares its answers with ``answers(...)``; one pass
over the generated document adds them to every route that uses it, so a new route is documented by what
it depends on, not by hand. Route-specific answers (409 reference_already_used ...) stay in the route's
own ``responses=``; this pass only gives them the problem media type and schema.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import fastapi.routing
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from stalela.kit.openapi_examples import add_examples
from stalela.kit.problems import PROBLEM_JSON

F = TypeVar("F", bound=Callable[..., Any])

_DESCRIPTIONS = {
    400: "malformed_json: the body is not valid JSON; invalid_cursor: `starting_after` names no object of the list",
    401: "Missing, invalid or revoked credentials",
    403: "The caller may not do this (tenant_suspended, insufficient_permissions, api_key_outlet_restricted, ...)",
    404: "No such object, or not visible to this caller",
    409: "The request conflicts with the current state",
    413: "payload_too_large: the body exceeds STALELA_MAX_BODY_BYTES",
    415: "unsupported_media_type: the body is not JSON",
    422: "The input breaks the schema or a rule; `field` and `errors[]` name what",
    429: "rate_limited: slow down (see Retry-After)",
    503: "A dependency (database, key store) is unavailable; retry later",
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; `code` is the stable machine code (docs/api.md#errors).",
    "type": "object",
    "required": ["type", "title", "status", "code", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "code": {"type": "string"},
        "detail": {"type": "string"},
        "field": {"type": "string"},
        "errors": {"type": "array", "items": {
            "type": "object", "required": ["field", "code", "detail"],
            "properties": {"field": {"type": "string"}, "code": {"type": "string"}, "detail": {"type": "string"}},
        }},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
        "detail_en": {"type": "string", "description": "The English detail, with its values, when `detail` "
                                                         "is a translated sentence without them"},
    },
    "additionalProperties": True,
    # One example shared by every error answer (each refers to this schema): the shape, with `errors[]`.
    "examples": [{
        "type": "https://stalela.dev/problems/validation_failed", "title": "Validation failed", "status": 422,
        "code": "validation_failed", "detail": "lines.0.quantity: Input should be greater than 0",
        "field": "lines.0.quantity",
        "errors": [{"field": "lines.0.quantity", "code": "greater_than", "detail": "Input should be greater than 0"}],
        "instance": "/v1/invoices", "request_id": "72fd8a2e5c7b4f0e9d1a3b6c8e0f2a4d",
    }],
}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


_WRITES = frozenset({"POST", "PUT", "PATCH"})
_BINARY = {"type": "string", "format": "binary"}


def media(*types: str, description: str = "Successful Response", json: bool = False) -> dict[str, Any]:
    """A ``responses=`` entry for an answer in other media types than JSON (PDF, CSV, SVG, HTML ...)."""
    content: dict[str, Any] = {"application/json": {"schema": {}}} if json else {}
    content.update({t: {"schema": _BINARY} for t in types})
    return {"description": description, "content": content}


def answers(*statuses: int) -> Callable[[F], F]:
    """Declare the error statuses a dependency can answer; every route depending on it documents them."""

    def mark(fn: F) -> F:
        fn.error_statuses = frozenset(statuses)  # type: ignore[attr-defined]
        return fn

    return mark


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


def route_errors(route: Any) -> set[int]:
    """The error statuses a route can answer, from its parts."""
    statuses: set[int] = set()
    for dep in _dependants(route.dependant):
        statuses |= getattr(dep.call, "error_statuses", frozenset())
        if dep.path_params:
            statuses |= {404, 422}
        if dep.query_params or dep.header_params or dep.cookie_params:
            statuses.add(422)
        if dep.body_params:
            statuses |= {400, 413, 415, 422}
    statuses |= {int(s) for s in route.responses if str(s).isdigit() and int(s) >= 400}
    return statuses


def _problem_content() -> dict[str, Any]:
    return {PROBLEM_JSON: {"schema": _PROBLEM_REF}}


def all_routes(app: FastAPI) -> Iterator[Any]:
    """Every route, as seen with its router's prefix. Recent FastAPI keeps included routers as such
    (``app.routes`` holds the routers) and iterates them through route contexts."""
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    return iter(contexts(app.routes) if contexts else app.routes)


def _api_routes(app: FastAPI) -> Iterator[Any]:
    for route in all_routes(app):
        if isinstance(getattr(route, "original_route", route), APIRoute) and route.include_in_schema:
            yield route


def allowed_methods(app: FastAPI, path: str) -> str:
    """The ``Allow`` header of a 405: the methods of every route of this path's template, not only of the
    first route Starlette tried (``/v1/tenants`` is two routes, GET and POST). Of the templates matching
    the path, the most specific one (fewest parameters: ``/v1/exports/audit`` over ``/v1/exports/{id}``)."""
    by_template: dict[str, set[str]] = {}
    for route in all_routes(app):
        regex, route_methods = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is not None and route_methods and regex.match(path):
            by_template.setdefault(route.path_format, set()).update(route_methods)
    if not by_template:
        return ""
    best = min(by_template, key=lambda template: template.count("{"))
    return ", ".join(sorted(by_template[best]))


def complete(app: FastAPI, spec: dict[str, Any]) -> dict[str, Any]:
    """Add every route's error answers (problem+json) to ``spec``, FastAPI's generated document."""
    spec.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for route in _api_routes(app):
        errors = route_errors(route)
        for method in route.methods:
            operation = spec["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            # The body guard (observability.middleware) checks every write's body, whatever the route takes.
            statuses = errors | ({413, 415} if method in _WRITES else set())
            responses = operation.setdefault("responses", {})
            for status in statuses:
                answer = responses.setdefault(str(status), {})
                answer.setdefault("description", _DESCRIPTIONS.get(status, "Error"))
                # Replaces FastAPI's application/json 422; keeps a page a route declares for browsers
                # (the public verification pages answer their 404 in HTML unless JSON is asked for).
                pages = {t: c for t, c in answer.get("content", {}).items() if t != "application/json"}
                answer["content"] = {**pages, **_problem_content()}
            operation["responses"] = dict(sorted(responses.items()))
    schemas = spec["components"]["schemas"]
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return add_examples(spec)


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the completed document (built once, like FastAPI's own)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, openapi_version=app.openapi_version,
                               description=app.description, routes=app.routes, tags=app.openapi_tags,
                               servers=app.servers)
            app.openapi_schema = complete(app, spec)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
