"""Every operation of `/openapi.json` has examples (issue 23, item 5): a request example for every JSON body, a
response example for every JSON success answer, and the errors share the `Problem` schema's one example. Each
example validates against its own schema (jsonschema, OpenAPI 3.1 = JSON Schema 2020-12), so an example can
not drift from the model it shows."""
from __future__ import annotations

import jsonschema

JSON = "application/json"


def _validator(spec: dict, schema: dict) -> jsonschema.Draft202012Validator:
    # The schema refers to #/components/schemas/...: validate inside the whole document.
    return jsonschema.Draft202012Validator({**schema, "components": spec["components"]},
                                           format_checker=jsonschema.FormatChecker())


def _examples(media: dict) -> list:
    if "example" in media:
        return [media["example"]]
    return [e["value"] for e in media.get("examples", {}).values() if "value" in e]


def _walk(spec: dict):
    """(where, media object) of every JSON body and JSON success answer."""
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            where = f"{method.upper()} {path}"
            body = op.get("requestBody", {}).get("content", {})
            if JSON in body:
                yield f"{where} request", body[JSON]
            for status, answer in op["responses"].items():
                if status.startswith("2") and JSON in answer.get("content", {}):
                    yield f"{where} {status}", answer["content"][JSON]


async def test_every_body_and_success_answer_has_a_valid_example(client):
    spec = (await client.get("/openapi.json")).json()
    missing, invalid = [], []
    for where, media in _walk(spec):
        examples = _examples(media)
        if not examples:
            missing.append(where)
            continue
        for example in examples:
            errors = sorted(_validator(spec, media.get("schema", {})).iter_errors(example), key=str)
            if errors:
                invalid.append(f"{where}: {errors[0].message} at {list(errors[0].absolute_path)}")
    assert not missing, "no example for:\n  " + "\n  ".join(missing)
    assert not invalid, "examples that break their schema:\n  " + "\n  ".join(invalid)


async def test_errors_share_the_problem_example(client):
    spec = (await client.get("/openapi.json")).json()
    problem = spec["components"]["schemas"]["Problem"]
    (example,) = problem["examples"]
    assert not list(_validator(spec, problem).iter_errors(example))
    assert example["code"] and example["status"] >= 400


def test_the_builder_refuses_nothing_it_makes():
    """The values built from a schema (when a model has no example) match the schema's own patterns."""
    from stalela.kit.openapi_examples import build

    spec = {"components": {"schemas": {}}}
    schema = {"type": "object", "properties": {
        "outlet_id": {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,64}$"},
        "total": {"type": "string", "pattern": r"^-?\d+(\.\d{1,2})?$"},
        "issued_at": {"type": "string", "format": "date-time"},
        "status": {"enum": ["active", "inactive"]},
        "lines": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 2},
    }}
    value = build(schema, spec)
    assert not list(_validator(spec, schema).iter_errors(value)), value
    assert value["outlet_id"].startswith("out_") and value["status"] == "active" and len(value["lines"]) == 2


async def test_request_examples_are_accepted_by_the_routes_own_validation(app):
    """Beyond the schema: the model's validators too (a rate card's price is `unit_price` or `tiers`, never both;
    a hold's `from` is not after its `to`), as the route validates the body before any service runs."""
    from fastapi.routing import APIRoute

    from stalela.kit.openapi import all_routes

    spec = app.openapi()
    refused = []
    for route in all_routes(app):
        original = getattr(route, "original_route", route)
        if not isinstance(original, APIRoute) or route.body_field is None or not route.include_in_schema:
            continue
        for method in route.methods:
            body = spec["paths"][route.path_format][method.lower()].get("requestBody", {}).get("content", {})
            if JSON not in body:
                continue
            _, errors = route.body_field.validate(body[JSON]["example"], {}, loc=("body",))
            if errors:
                refused.append(f"{method} {route.path_format}: {errors}")
    assert not refused, "request examples the route refuses:\n  " + "\n  ".join(map(str, refused))
