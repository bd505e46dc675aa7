"""Examples for every request body and success answer of the OpenAPI document (issue 23, item 5).

Where an example comes from, first found wins:
1. the operation's own (a route's ``responses=`` or ``openapi_examples=``);
2. ``openapi_examples.json`` beside this module: real requests and answers, recorded from a running server
   (``tests/api/record_examples.py``), keyed ``"METHOD /path"`` then ``"request"`` or the status. It holds
   the answers whose routes return plain dicts (no response model, so no schema to build from), and the
   requests worth showing with real values;
3. the schema's own examples (``model_config = ConfigDict(json_schema_extra={"examples": [...]})`` or
   ``Field(examples=[...])`` on the pydantic models), then a value built from the schema: its ``enum``,
   ``default`` and formats, with ids, amounts and times that look like ours and match the patterns.
``tests/api/test_openapi_examples.py`` checks that every operation has them and that each validates
against its own schema.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

EXAMPLES_FILE = Path(__file__).with_name("openapi_examples.json")
_ULID = "01m82ejke9nqfx6wjsbqs2stkd"
# The prefix of an id by the name of its field (kit.ids: a type prefix plus a time-ordered ULID).
_PREFIXES = {"outlet": "out", "tenant": "ten", "invoice": "inv", "original_invoice": "inv", "key": "key",
             "api_key": "key", "user": "usr", "endpoint": "we", "message": "msg", "msg": "msg", "export": "exp",
             "checkpoint": "chk", "event": "evt", "move": "mov", "bill": "bill", "anomaly": "anom", "hold": "hold",
             "operator": "opr", "request": "er", "privacy_export": "pex", "series": "ser", "z_report": "zrp",
             "attempt": "att", "family": "fam", "subject": "sub", "signing_key": "sig"}
_BY_NAME = {"currency": "CDF", "email": "awa@example.cd", "url": "https://hooks.example.com/stalela",
            "base_url": "https://dgi.example.cd", "name": "Boutique Kin SARL", "tax_id": "A1234567B",
            "timezone": "Africa/Kinshasa", "jurisdiction": "CD", "code": "KIN1", "description": "Sac de riz 25 kg",
            "reason": "sent twice", "password": "a long passphrase", "locale": "fr", "period": "2026-11",
            "hash": "9e92e20bd64c0e9bd6e12e57a19b5ee11d88954d8ad98f86c0e01cba9e9e1b28",
            "fiscal_number": "MAIN-00000001", "reference": "POS-2026-000123", "topic": "invoice.sealed",
            "resource": "api_calls", "country": "CD", "type": "FV", "nim": "NIM1", "token": "device-token",
            "address": "12 avenue du Commerce, Gombe, Kinshasa", "status": "active", "event_types": "invoice.sealed",
            "event_type": "invoice.sealed", "server": "db-a:5432", "role": "accountant", "scopes": "invoices:write",
            "tier": "shared", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "vat_condition": "responsable_inscripto",
            "api_key": "sk_" + "a" * 52, "prefix": "sk_abcd", "plan_id": "default", "category": "fiscal",
            "title": "Validation failed", "detail": "the export is pending", "quantity": "12.500000",
            "amount": "15.00", "total": "15.02", "rate": "3050.25", "day": "2026-11-20"}
# The prefix of an object's own ``id``, by its schema's title (checked in order: "RegistryTenantOut" -> ten).
_TITLES = [("Outlet", "out"), ("Tenant", "ten"), ("ApiKey", "key"), ("Attempt", "att"), ("Message", "msg"),
           ("Endpoint", "we"), ("Erasure", "er"), ("PrivacyExport", "pex"), ("Hold", "hold"), ("Bill", "bill"),
           ("Anomaly", "anom"), ("Operator", "opr"), ("Move", "mov"), ("Offboarding", "off"), ("Plan", "plan"),
           ("Recorded", "use"), ("Event", "use"), ("Audit", "aud")]
_BY_FORMAT = {"date-time": "2026-12-07T09:30:00Z", "date": "2026-12-07", "uri": "https://hooks.example.com/stalela",
              "email": "awa@example.cd", "binary": "", "uuid": "0b8e2f0c-6a1e-4c77-9a8e-3d2d6b1f5c10",
              "duration": "P1D", "time": "09:30:00Z"}
_MAPS_BY_RESOURCE = {"prices", "caps", "allowances", "quotas", "usage"}
# Tried in order when nothing above matches a pattern (decimal amounts, codes, periods, ids ...).
_CANDIDATES = ["4121.08", "16", "1", "CDF", "A1", "B", "FV", "2026-11", "2026-12-07", "abc_1", f"inv_{_ULID}",
               "KIN1", "a", "sk_" + "a" * 52, "invoice.sealed", "0"]


@lru_cache(maxsize=1)
def recorded() -> dict[str, dict[str, Any]]:
    return json.loads(EXAMPLES_FILE.read_text(encoding="utf-8")) if EXAMPLES_FILE.is_file() else {}


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


def _string(schema: dict[str, Any], name: str, owner: str) -> str:
    pattern, low, high = schema.get("pattern"), schema.get("minLength", 0), schema.get("maxLength", 10**6)
    tries: list[str] = []
    if schema.get("format") in _BY_FORMAT:
        tries.append(_BY_FORMAT[schema["format"]])
    if name in _BY_NAME:
        tries.append(_BY_NAME[name])
    stem = name[:-3] if name.endswith("_id") else name[:-4] if name.endswith("_ids") else None
    if name == "id":
        tries.append(f"{next((p for t, p in _TITLES if t in owner), 'obj')}_{_ULID}")
    elif stem is not None:
        tries.append(f"{_PREFIXES.get(stem, stem[:4])}_{_ULID}")
    if pattern is None and name:
        tries.append(name.replace("_", " "))  # a free text: its own name reads better than a random value
    tries += _CANDIDATES
    for value in tries:
        if low <= len(value) <= high and (pattern is None or re.search(pattern, value)):
            return value
    return "x" * max(low, 1)


def build(schema: dict[str, Any], spec: dict[str, Any], name: str = "", depth: int = 0, owner: str = "") -> Any:
    """A value valid for ``schema`` (its own example when it has one); ``owner``: the title of the object
    holding it (an ``id``'s prefix)."""
    schema = _resolve(schema, spec)
    if "example" in schema:
        return schema["example"]
    if schema.get("examples"):
        return schema["examples"][0]
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if schema.get("default") is not None:
        return schema["default"]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            branches = [b for b in schema[key] if _resolve(b, spec).get("type") != "null"] or schema[key]
            return build(branches[0], spec, name, depth, owner)
    if "allOf" in schema:
        return build(schema["allOf"][0], spec, name, depth, owner)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        if depth > 6:
            return {}
        title = schema.get("title", "")
        value = {prop: build(sub, spec, prop, depth + 1, title) for prop, sub in schema.get("properties", {}).items()}
        extra = schema.get("additionalProperties")
        key = _BY_NAME["resource"] if name in _MAPS_BY_RESOURCE else "key"
        if not value and schema.get("patternProperties"):  # a map keyed by pattern (prices by resource ...)
            pattern, sub = next(iter(schema["patternProperties"].items()))
            key = next((k for k in (key, _BY_NAME["resource"], "a") if re.search(pattern, k)), key)
            value[key] = build(sub, spec, "", depth + 1)
        elif not value and isinstance(extra, dict) and extra:  # a map: one entry
            value[key] = build(extra, spec, "", depth + 1)
        return value
    if kind == "array":
        item = build(schema.get("items", {}), spec, name, depth + 1, owner)
        return [item] * max(schema.get("minItems", 1), 1) if depth <= 6 else []
    if kind == "string":
        return _string(schema, name, owner)
    if kind == "integer":
        return max(schema.get("minimum", 1), 1) if schema.get("maximum", 1) >= 1 else schema.get("minimum", 0)
    if kind == "number":
        return schema.get("minimum", 1)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return {}


def _has_example(media: dict[str, Any]) -> bool:
    return "example" in media or bool(media.get("examples"))


def add_examples(spec: dict[str, Any]) -> dict[str, Any]:
    """Give every JSON request body and success answer of ``spec`` an example (see the module's note)."""
    table = recorded()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            mine = table.get(f"{method.upper()} {path}", {})
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None and not _has_example(body):
                body["example"] = mine["request"] if "request" in mine else build(body.get("schema", {}), spec)
            for status, answer in operation.get("responses", {}).items():
                media = answer.get("content", {}).get("application/json")
                if not status.startswith("2") or media is None or _has_example(media):
                    continue
                if status in mine:
                    media["example"] = mine[status]
                elif media.get("schema"):
                    media["example"] = build(media["schema"], spec)
    return spec
