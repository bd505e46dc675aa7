"""Rendering a StalelaError as RFC 9457 problem+json; used by the one error handler (and by the few
endpoints that must answer an error while still committing, e.g. a failed login's audit entry)."""
from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from stalela.errors import StalelaError
from stalela.kit.fastjson import FastJSONResponse

PROBLEM_JSON = "application/problem+json"


def problem_response(error: StalelaError, request: Request | None = None) -> JSONResponse:
    body = error.problem()
    if request is not None:
        body["instance"] = request.url.path
        rid = getattr(request.state, "request_id", None) or request.scope.get("state", {}).get("request_id")
        if rid:
            body["request_id"] = rid
    # Only the route-specific extra members may hold a float (kit/fastjson.py): those keep json's encoder.
    response = JSONResponse if error.extra else FastJSONResponse
    return response(body, status_code=error.status, media_type=PROBLEM_JSON, headers=error.headers)
