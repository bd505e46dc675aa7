"""Small pieces every platform shares: money, time formats, raw JSON bytes, errors, the API gate."""
from __future__ import annotations

import asyncio
import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from stalela.authority.simulator.server import ABORT_EXTENSION
from stalela.kit.money import round_money


class SimError(Exception):
    """An answer in the platform's own error shape (``body``), raised from anywhere in a route."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, body)
        self.status, self.body, self.headers = status, body, headers or {}


class HangUp(Exception):
    """The simulated network closes the connection instead of answering."""


# ------------------------------------------------------------------------------------ money


def dec(value: Any) -> Decimal:
    """An amount from a request body (string, integer or JSON number) as an exact Decimal."""
    if value is True or value is False:  # a JSON boolean is not a number, though Python says so
        raise ValueError(f"not an amount: {value!r}")
    try:
        # A float is read through its shortest repr (0.1 -> "0.1"), never its binary expansion.
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, TypeError):
        raise ValueError(f"not an amount: {value!r}") from None


def money(value: Any) -> str:
    """A decimal string with two places: ``"1210.00"``."""
    return str(round_money(dec(value)))


def number(value: Any) -> int | float:
    """A JSON number with at most two decimals (Mercado Libre's amounts).

    Computed in Decimal and rounded there; the float only carries the final, already rounded value
    to the JSON encoder, whose shortest-repr output is exactly those digits (``1234.5``).
    """
    rounded = round_money(dec(value))
    return int(rounded) if rounded == rounded.to_integral_value() else float(rounded)


def total(values: list[Any]) -> Decimal:
    return sum((dec(v) for v in values), Decimal(0))


def fill(order: dict, defaults: dict[str, Any]) -> None:
    """Set every field of ``defaults`` the order does not have (a copy: defaults are shared)."""
    for key, value in defaults.items():
        if key not in order:
            order[key] = copy.deepcopy(value)


# ------------------------------------------------------------------------------------ time


def parse_time(text: str) -> datetime:
    """ISO 8601 / RFC 3339 in the forms the platforms and their clients use; naive means UTC."""
    value = text.strip().replace(" ", "+")  # a '+' in a query string that was not escaped
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    moment = datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def iso_offset(moment: datetime, offset: str, *, millis: bool = False) -> str:
    """``moment`` in the zone ``±HH:MM`` as ``2025-01-10T09:34:56-03:00`` (``.000`` with millis)."""
    sign = -1 if offset.startswith("-") else 1
    hours, minutes = (int(p) for p in offset.lstrip("+-").split(":"))
    zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
    local = moment.astimezone(zone)
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if millis:
        text += f".{local.microsecond // 1000:03d}"
    return text + offset


# ------------------------------------------------------------------------------------ JSON


def json_bytes(value: Any, *, ascii_only: bool = False, escape_slashes: bool = False) -> bytes:
    """The exact bytes a platform sends (and signs): compact JSON in the platform's dialect.

    WordPress' ``wp_json_encode`` escapes non-ASCII characters and ``/`` (``\\/``): a receiver that
    re-serialises the parsed body will not reproduce the signed bytes, which is the point.
    """
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=ascii_only)
    if escape_slashes:
        text = text.replace("/", "\\/")
    return text.encode("utf-8")


def json_body(request_body: bytes) -> Any:
    try:
        return json.loads(request_body or b"{}")
    except ValueError:
        return None


async def fields(request: Request) -> dict[str, Any]:
    """The fields of a JSON object body, or else of a form (OAuth endpoints take either)."""
    body = json_body(await request.body())
    if isinstance(body, dict) and body:
        return body
    return dict((await request.form()).items())


# ------------------------------------------------------------------------------------ HTTP


async def api_gate(request: Request) -> None:
    """Delay and the faults that strike an API call before the platform does anything."""
    sim = request.app.state.sim
    # Read the whole request first (it stays cached for the route): closing a socket with unread
    # bytes makes the kernel send RST, a "connection reset" instead of a clean hang-up.
    await request.body()
    spec = sim.faults.spec
    if spec.api_delay_ms:
        await asyncio.sleep(spec.api_delay_ms / 1000)
    fault = sim.faults.api()
    if fault == "api_5xx":
        raise sim.platform.error(503, "Service Unavailable")
    if fault == "hang_up":
        raise HangUp()


async def sim_error_response(request: Request, exc: SimError) -> Response:
    return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)


async def hang_up_response(request: Request, exc: HangUp) -> Response:
    abort = (request.scope.get("extensions") or {}).get(ABORT_EXTENSION)
    if abort is None:  # not under the simulator's own server: the closest thing is a bare 502
        return Response(status_code=502)
    abort()
    # Give the transport a turn to report the loss, so uvicorn writes nothing after it.
    for _ in range(3):
        await asyncio.sleep(0)
    return Response(status_code=204)
