"""The one JSON parser of request bodies: RFC 8259 JSON, nothing more.

Python's ``json`` reads ``NaN``, ``Infinity`` and ``-Infinity``, which are not JSON: a value parsed
from them would pass into free-form fields, then fail canonicalization or the database later. FastAPI
parses every body with ``Request.json()``; every API route is a ``JSONRoute`` (the app's test checks
it), whose request parses strictly, so those literals fail here like any other syntax error and
answer ``400 malformed_json`` (app.py turns FastAPI's bare 400 into it).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

from fastapi import Request, Response
from fastapi.routing import APIRoute


def _not_json(literal: str) -> NoReturn:
    raise ValueError(f"{literal} is not JSON (RFC 8259)")


def loads(body: bytes | str) -> Any:
    return json.loads(body, parse_constant=_not_json)


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


class JSONRoute(APIRoute):
    """An API route whose body is read by ``StrictJSONRequest``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict
