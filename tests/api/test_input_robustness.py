"""Inputs that used to pass validation and fail later (issue 24, items 5-7): integers beyond int64,
dates given as numbers, report days outside the outlet's life, and bodies the JSON parser refuses."""
from __future__ import annotations

import pytest

from tests.support.invoices import sample_invoice

TOO_BIG = str(2**63)  # one past the largest bigint


@pytest.mark.parametrize("path, param", [
    ("/v1/audit-log", "before_seq"),
    ("/v1/ledger/checkpoints", "min_tree_size"),
    ("/v1/ledger/checkpoints", "max_tree_size"),
    ("/v1/ledger/consistency?first=1", "second"),
    ("/v1/invoices", "limit"),
])
async def test_integers_beyond_int64_are_a_422_naming_the_field(client, new_tenant, path, param):
    _, headers = await new_tenant()
    sep = "&" if "?" in path else "?"
    r = await client.get(f"{path}{sep}{param}={TOO_BIG}", headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "validation_failed" and r.json()["field"] == param
    # The largest bigint itself is a valid query (whatever it finds).
    r = await client.get(f"{path}{sep}{param}={2**63 - 1}", headers=headers)
    assert r.status_code != 500, r.text


async def test_every_integer_the_api_accepts_is_bounded_to_int64(app):
    """The shared guard: no integer in any parameter or request body is unbounded in the schema."""
    spec = app.openapi()
    schemas = spec["components"]["schemas"]
    unbounded: list[str] = []

    def walk(node, where: str, seen: frozenset[str]) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if ref:
                name = ref.rsplit("/", 1)[-1]
                if name not in seen:
                    walk(schemas[name], f"{where}->{name}", seen | {name})
                return
            if node.get("type") == "integer":
                lo, hi = node.get("minimum"), node.get("maximum")
                if lo is None or hi is None or lo < -(2**63) or hi > 2**63 - 1:
                    unbounded.append(where)
            for key, value in node.items():
                walk(value, f"{where}/{key}", seen)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]", seen)

    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for p in op.get("parameters", []):
                walk(p["schema"], f"{method.upper()} {path} {p['name']}", frozenset())
            for media in op.get("requestBody", {}).get("content", {}).values():
                walk(media["schema"], f"{method.upper()} {path} body", frozenset())
    assert unbounded == []


@pytest.mark.parametrize("query", ["a-reports?from=0&to=2026-01-31", "a-reports?from=2026-01-01&to=1700000000",
                                   "a-reports?from=2026-1-1&to=2026-01-31", "z-reports?business_day_gte=0"])
async def test_dates_are_yyyy_mm_dd_strings_only(client, new_tenant, query):
    _, headers = await new_tenant()
    r = await client.get(f"/v1/{query}", headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["field"] in ("from", "to", "business_day_gte")
    assert r.json()["errors"][0]["code"] == "date_format"


async def test_date_times_are_rfc3339_strings_only(client, new_tenant):
    _, headers = await new_tenant()
    r = await client.get("/v1/invoices?issued_at_gte=0", headers=headers)
    assert r.status_code == 422 and r.json()["field"] == "issued_at_gte", r.text
    assert r.json()["errors"][0]["code"] == "datetime_format"
    r = await client.get("/v1/invoices", params={"issued_at_gte": "2026-01-01T00:00:00Z"}, headers=headers)
    assert r.status_code == 200, r.text


async def test_a_z_report_before_the_outlet_existed_is_refused_and_consumes_no_number(client, new_tenant):
    _, headers = await new_tenant()
    outlet = (await client.post("/v1/outlets", json={"code": "K1", "name": "Gombe"}, headers=headers)).json()
    r = await client.post(f"/v1/outlets/{outlet['id']}/z-reports", json={"business_day": "2020-08-20"},
                          headers=headers)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert (problem["code"], problem["field"]) == ("business_day_before_outlet", "business_day")
    assert problem["first_business_day"] >= outlet["created_at"][:10] and "2020-08-20" in problem["detail"]
    r = await client.post(f"/v1/outlets/{outlet['id']}/z-reports", json={"business_day": "0928-08-20"},
                          headers=headers)  # the campaign's day: outside any fiscal calendar
    assert r.status_code == 422 and r.json()["errors"][0]["code"] == "date_range", r.text
    r = await client.post(f"/v1/outlets/{outlet['id']}/z-reports", json={"business_day": 0}, headers=headers)
    assert r.status_code == 422 and r.json()["field"] == "business_day", r.text
    r = await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)
    assert r.status_code == 201, r.text
    z = await client.post(f"/v1/outlets/{outlet['id']}/z-reports", headers=headers)
    assert z.status_code == 201, z.text
    assert z.json()["z_counter"] == 1  # the refused day took no number


@pytest.mark.parametrize("name, body", [
    ("invalid UTF-8", b'{"outlet_id": "\xff\xfe"}'),
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000),
    ("an integer of 5000 digits", b'{"outlet_id": ' + b"9" * 5000 + b"}"),
    ("a syntax error", b'{"outlet_id": '),
])
async def test_bodies_the_json_parser_refuses_are_400_malformed_json(client, new_tenant, name, body):
    _, headers = await new_tenant()
    r = await client.post("/v1/invoices", content=body, headers={**headers, "Content-Type": "application/json"})
    assert r.status_code == 400, (name, r.text)
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "malformed_json", name


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("path", ["/v1/invoices", "/v1/outlets", "/v1/invoices/batch"])
async def test_nan_and_infinity_are_not_json_and_answer_400_malformed_json(client, new_tenant, literal, path):
    # Python's json reads them; RFC 8259 has no such literals, and a float('nan') would reach free-form
    # fields and break later (canonical JSON, the database).
    _, headers = await new_tenant()
    body = b'{"outlet_id": "out_x", "code": "C1", "name": "n", "items": [], "lines": [{"quantity": ' + literal.encode() + b"}]}"
    r = await client.post(path, content=body, headers={**headers, "Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "malformed_json"
    # The same text inside a string is JSON: the request gets past the parser (to the schema or further).
    ok = body.replace(literal.encode(), b'"' + literal.encode() + b'"')
    r = await client.post(path, content=ok, headers={**headers, "Content-Type": "application/json"})
    assert r.status_code != 400, r.text


async def test_every_route_parses_bodies_with_the_strict_json_parser(app):
    """NaN and Infinity are refused in one place, the route class: a router made without it fails here."""
    from fastapi.routing import APIRoute

    from stalela.kit.jsonbody import JSONRoute

    loose = [f"{sorted(r.methods)} {r.path}" for r in app.routes if isinstance(r, APIRoute) and not isinstance(r, JSONRoute)]
    assert loose == []


async def test_a_device_url_longer_than_its_column_is_a_422_not_a_database_error(client, new_tenant):
    # Found by the fuzz test: PostgreSQL refused the 500+ character URL with a 500.
    _, headers = await new_tenant()
    outlet = (await client.post("/v1/outlets", json={"code": "D1", "name": "Dev"}, headers=headers)).json()
    host = ".".join(["a" * 63] * 8) + ".cd"
    r = await client.put(f"/v1/outlets/{outlet['id']}/authority-device",
                         json={"nim": "NIM1", "base_url": f"https://{host}/", "token": "t"}, headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "base_url"


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
async def test_a_date_time_without_a_utc_instant_is_a_422(client, new_tenant, value):
    # Found by probing the date-time filters: converting to UTC for the query overflowed (a 500).
    _, headers = await new_tenant()
    r = await client.get("/v1/invoices", params={"issued_at_gte": value}, headers=headers)
    assert r.status_code == 422, r.text
    assert (r.json()["field"], r.json()["errors"][0]["code"]) == ("issued_at_gte", "datetime_range")
    r = await client.get("/v1/invoices", params={"issued_at_gte": "0001-01-01T00:00:00Z"}, headers=headers)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("day", ["0001-01-01", "0001-01-03", "1899-12-31", "9999-01-01", "9999-12-31"])
async def test_dates_outside_1900_to_9998_are_a_422(client, new_tenant, day):
    # An A report over 0001-01-01 answered 200, then its stream broke on day arithmetic (OverflowError).
    _, headers = await new_tenant()
    r = await client.get("/v1/a-reports", params={"from": day, "to": day}, headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["code"] == "date_range"
    r = await client.get("/v1/a-reports", params={"from": "1900-01-01", "to": "1900-01-01"}, headers=headers)
    assert r.status_code == 200 and r.json()["object"] == "a_report", r.text
    r = await client.get("/v1/a-reports", params={"from": "9998-12-31", "to": "9998-12-31"}, headers=headers)
    assert r.status_code == 200 and r.json()["object"] == "a_report", r.text
