"""The MCP documentation tools' answers, read from the live OpenAPI document (issue 19, item 2).

Nothing here is written by hand about the API: every path returned is one the app serves, every schema
is the one it validates with, so the answers cannot drift from the code. Code examples take the API key
and the base URL from the environment (``STALELA_API_KEY``, ``STALELA_URL``), never a literal key.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz

from stalela.errors import NotFound, ValidationFailed

METHODS = ("get", "post", "put", "patch", "delete")
LANGUAGES = ("python", "js", "php")
_MAX_DEPTH = 6  # $ref inlining depth: deep enough for an invoice body, bounded for recursive schemas


def operations(openapi: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(METHOD, path, operation) of the documented API (``/v1`` routes; pages and probes left out)."""
    found = []
    for path, item in sorted(openapi.get("paths", {}).items()):
        if not path.startswith("/v1/"):
            continue
        for method in METHODS:
            if method in item:
                found.append((method.upper(), path, item[method]))
    return found


def _text(op: dict[str, Any]) -> str:
    return " ".join([op.get("summary", ""), op.get("description", ""), " ".join(op.get("tags", [])),
                     op.get("operationId", "").replace("_", " ")])


def search(openapi: dict[str, Any], query: str, limit: int) -> list[dict[str, Any]]:
    """The operations that best match ``query`` (words of the path, summary, description and tags)."""
    words = [w for w in re.split(r"[^\w]+", query.lower()) if w]
    scored = []
    for method, path, op in operations(openapi):
        haystack = f"{method} {path.replace('/', ' ').replace('-', ' ')} {_text(op)}".lower()
        exact = sum(1 for w in words if w in haystack)
        score = exact * 100 + fuzz.token_set_ratio(query.lower(), haystack)
        scored.append((score, method, path, op))
    scored.sort(key=lambda s: (-s[0], s[2], s[1]))
    return [{"method": m, "path": p, "summary": op.get("summary", ""), "tags": op.get("tags", []),
             "score": round(s / (100 * max(1, len(words)) + 100), 3)} for s, m, p, op in scored[:limit]]


def find(openapi: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    op = openapi.get("paths", {}).get(path, {}).get(method.lower())
    if op is None or not path.startswith("/v1/"):
        close = [f"{m} {p}" for m, p, _ in sorted(
            operations(openapi), key=lambda o: -fuzz.ratio(f"{method.upper()} {path}", f"{o[0]} {o[1]}"))[:3]]
        raise NotFound(f"no operation {method.upper()} {path}; closest: {', '.join(close)}",
                       code="endpoint_not_found", field="path", extra={"closest": close})
    return op


def _inline(schema: Any, openapi: dict[str, Any], depth: int = 0) -> Any:
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            if depth >= _MAX_DEPTH:
                return {"$ref": ref}
            target = openapi.get("components", {}).get("schemas", {}).get(ref.rsplit("/", 1)[1], {})
            return _inline(target, openapi, depth + 1)
        return {k: _inline(v, openapi, depth) for k, v in schema.items() if k != "examples" or depth == 0}
    if isinstance(schema, list):
        return [_inline(v, openapi, depth) for v in schema]
    return schema


def details(openapi: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    op = find(openapi, method, path)
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
    return {
        "method": method.upper(), "path": path, "summary": op.get("summary", ""),
        "description": op.get("description", ""), "tags": op.get("tags", []),
        "parameters": [{"name": p.get("name"), "in": p.get("in"), "required": p.get("required", False),
                        "description": p.get("description", ""), "schema": _inline(p.get("schema", {}), openapi)}
                       for p in op.get("parameters", [])],
        "request_body": _inline(body.get("schema"), openapi) if body else None,
        "request_example": example_body(op, openapi),
        "responses": {code: r.get("description", "") for code, r in sorted(op.get("responses", {}).items())},
    }


def example_body(op: dict[str, Any], openapi: dict[str, Any]) -> Any:
    """The request body's first documented example (the OpenAPI examples the test suite re-records)."""
    content = op.get("requestBody", {}).get("content", {}).get("application/json", {})
    if not content:
        return None
    if "example" in content:
        return content["example"]
    for found in (content.get("examples") or {}).values():
        if isinstance(found, dict) and "value" in found:
            return found["value"]
    schema = _inline(content.get("schema", {}), openapi)
    examples = schema.get("examples") if isinstance(schema, dict) else None
    return examples[0] if isinstance(examples, list) and examples else {}


@dataclass(frozen=True)
class Call:
    """What an example sends and how it reads the answer, from the operation's OpenAPI description."""

    method: str
    path: str
    path_params: list[str]
    query_params: list[str]  # the required ones: set from the environment like path parameters
    body: Any  # the JSON example, or None
    upload: str | None  # a non-JSON body's media type (read from a file), or None
    idempotent: bool
    answer: str  # "json", "none" (204) or "file" (a PDF, an archive, an image: written to disk)
    file_name: str


def _call(openapi: dict[str, Any], method: str, path: str) -> Call:
    op = find(openapi, method, path)
    params = op.get("parameters", [])
    content = op.get("requestBody", {}).get("content", {})
    upload = None if not content or "application/json" in content else next(iter(content))
    success = sorted(code for code in op.get("responses", {}) if code.startswith("2"))
    media = op["responses"][success[0]].get("content", {}) if success else {}
    if success and success[0] == "204" or (success and not media):
        answer = "none"
    elif not media or "application/json" in media:
        answer = "json"
    else:
        answer = "file"
    return Call(method=method.upper(), path=path,
                path_params=[p["name"] for p in params if p.get("in") == "path"],
                query_params=[p["name"] for p in params if p.get("in") == "query" and p.get("required")],
                body=example_body(op, openapi) if not upload else None, upload=upload,
                idempotent=method.upper() == "POST" and any(p.get("name") == "Idempotency-Key" and
                                                            p.get("in") == "header" for p in params),
                answer=answer, file_name=re.sub(r"[^a-z0-9]+", "-", path.rsplit("/", 1)[-1].lower()).strip("-")
                or "answer")


def _env(name: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_")


def _var(name: str) -> str:
    """A parameter's name as a variable of the three languages (``from`` is a keyword in Python)."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") + "_"


def code_example(openapi: dict[str, Any], method: str, path: str, language: str) -> dict[str, Any]:
    if language not in LANGUAGES:
        raise ValidationFailed(f"language must be one of {', '.join(LANGUAGES)}", code="invalid_language",
                               field="language")
    call = _call(openapi, method, path)
    code = {"python": _python, "js": _js, "php": _php}[language](call)
    notes = ["The key comes from STALELA_API_KEY and the base URL from STALELA_URL: never paste a key in code."]
    needed = call.path_params + call.query_params
    if needed:
        notes.append(f"Set {', '.join(_env(n) for n in needed)} in the environment: the example reads them.")
    if call.upload:
        notes.append(f"The body is a file ({call.upload}): set STALELA_UPLOAD_FILE to its path.")
    if call.answer == "file":
        notes.append(f"The answer is a file: the example writes it to {call.file_name}.out.")
    if call.idempotent:
        notes.append("Reuse the same Idempotency-Key when retrying: the retry returns the first answer.")
    return {"language": language, "method": call.method, "path": path, "code": code, "notes": notes}


def _python(c: Call) -> str:
    lines = ["import os", "import uuid", "", "import httpx", "",
             'BASE_URL = os.environ.get("STALELA_URL", "http://127.0.0.1:8000")',
             'API_KEY = os.environ["STALELA_API_KEY"]']
    lines += [f"{_var(n)} = os.environ[{json.dumps(_env(n))}]" for n in c.path_params + c.query_params]
    lines += ["", 'headers = {"Authorization": f"Bearer {API_KEY}"}']
    if c.idempotent:
        lines.append('headers["Idempotency-Key"] = str(uuid.uuid4())  # keep it to retry safely')
    url = c.path
    for n in c.path_params:
        url = url.replace("{" + n + "}", "{" + _var(n) + "}")
    call = f"response = httpx.request({json.dumps(c.method)}, BASE_URL + f{json.dumps(url)}, headers=headers"
    if c.query_params:
        call += ", params={" + ", ".join(f"{json.dumps(n)}: {_var(n)}" for n in c.query_params) + "}"
    if c.body is not None:
        lines.append(f"body = {c.body!r}")
        call += ", json=body"
    if c.upload:
        lines.append(f'headers["Content-Type"] = {json.dumps(c.upload)}')
        lines.append('with open(os.environ["STALELA_UPLOAD_FILE"], "rb") as upload:')
        lines.append("    content = upload.read()")
        call += ", content=content"
    lines += [call + ", timeout=30)", "response.raise_for_status()"]
    lines += {"json": ["print(response.json())"], "none": ["print(response.status_code)"],
              "file": [f'with open("{c.file_name}.out", "wb") as out:', "    out.write(response.content)",
                       f'print("written to {c.file_name}.out")']}[c.answer]
    return "\n".join(lines + [""])


def _js(c: Call) -> str:
    lines = ['const BASE_URL = process.env.STALELA_URL ?? "http://127.0.0.1:8000";',
             "const API_KEY = process.env.STALELA_API_KEY;"]
    if c.upload or c.answer == "file":
        lines.insert(0, 'import { readFileSync, writeFileSync } from "node:fs";')
    lines += [f"const {_var(n)} = process.env.{_env(n)};" for n in c.path_params + c.query_params]
    lines += ["const headers = { Authorization: `Bearer ${API_KEY}` };"]
    if c.idempotent:
        lines.append('headers["Idempotency-Key"] = crypto.randomUUID(); // keep it to retry safely')
    url = c.path
    for n in c.path_params:
        url = url.replace("{" + n + "}", "${encodeURIComponent(" + _var(n) + ")}")
    target = "BASE_URL + `" + url + "`"
    if c.query_params:
        pairs = ", ".join(f"{json.dumps(n)}: {_var(n)}" for n in c.query_params)
        target += f" + \"?\" + new URLSearchParams({{ {pairs} }})"
    options = f"{{ method: {json.dumps(c.method)}, headers"
    if c.body is not None:
        lines.append('headers["Content-Type"] = "application/json";')
        lines.append(f"const body = {json.dumps(c.body, indent=2, ensure_ascii=False)};")
        options += ", body: JSON.stringify(body)"
    if c.upload:
        lines.append(f'headers["Content-Type"] = {json.dumps(c.upload)};')
        options += ", body: readFileSync(process.env.STALELA_UPLOAD_FILE)"
    lines += [f"const response = await fetch({target}, {options} }});",
              "if (!response.ok) throw new Error(`${response.status}: ${await response.text()}`);"]
    lines += {"json": ["console.log(await response.json());"], "none": ["console.log(response.status);"],
              "file": [f'writeFileSync("{c.file_name}.out", Buffer.from(await response.arrayBuffer()));',
                       f'console.log("written to {c.file_name}.out");']}[c.answer]
    return "\n".join(lines + [""])


def _php_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _php(c: Call) -> str:
    lines = ["<?php", "$baseUrl = getenv('STALELA_URL') ?: 'http://127.0.0.1:8000';",
             "$apiKey = getenv('STALELA_API_KEY');"]
    lines += [f"${_var(n)} = getenv({_php_string(_env(n))});" for n in c.path_params + c.query_params]
    lines += ["$headers = ['Authorization: Bearer ' . $apiKey];"]
    if c.idempotent:
        lines.append("$headers[] = 'Idempotency-Key: ' . bin2hex(random_bytes(16)); // keep it to retry safely")
    url = _php_string(c.path)
    for n in c.path_params:
        url = url.replace("{" + n + "}", f"' . rawurlencode(${_var(n)}) . '")
    if c.query_params:
        pairs = ", ".join(f"{_php_string(n)} => ${_var(n)}" for n in c.query_params)
        url += f" . '?' . http_build_query([{pairs}])"
    lines += [f"$ch = curl_init($baseUrl . {url});",
              f"curl_setopt($ch, CURLOPT_CUSTOMREQUEST, {_php_string(c.method)});",
              "curl_setopt($ch, CURLOPT_RETURNTRANSFER, true);"]
    if c.body is not None:
        lines.append("$headers[] = 'Content-Type: application/json';")
        lines.append(f"$body = {_php_string(json.dumps(c.body, ensure_ascii=False))};")
        lines.append("curl_setopt($ch, CURLOPT_POSTFIELDS, $body);")
    if c.upload:
        lines.append(f"$headers[] = {_php_string('Content-Type: ' + c.upload)};")
        lines.append("curl_setopt($ch, CURLOPT_POSTFIELDS, file_get_contents(getenv('STALELA_UPLOAD_FILE')));")
    lines += ["curl_setopt($ch, CURLOPT_HTTPHEADER, $headers);",
              "$response = curl_exec($ch);", "$status = curl_getinfo($ch, CURLINFO_RESPONSE_CODE);",
              "if ($status >= 400) { fwrite(STDERR, \"$status: $response\\n\"); exit(1); }"]
    lines += {"json": ["print_r(json_decode($response, true));"], "none": ["echo $status, PHP_EOL;"],
              "file": [f"file_put_contents('{c.file_name}.out', $response);",
                       f"echo 'written to {c.file_name}.out', PHP_EOL;"]}[c.answer]
    return "\n".join(lines + [""])
