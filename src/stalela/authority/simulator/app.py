"""The HTTP face of the simulator: the e-MCF ``/api`` and the ``/_sim`` test controls.

Routes stay thin: faults are decided in the ``gate`` dependency (before anything else, like a
network or a load balancer would), protocol rules live in ``state.py``, arithmetic in
``totals.py``.
"""
from __future__ import annotations

import asyncio
import copy
import json
from dataclasses import dataclass
from decimal import Decimal

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .faults import FaultInjector, FaultSpec, describe_validation_error
from .schemas import InvalidRequest, parse_invoice_request
from .server import ABORT_EXTENSION
from .state import Device, InvoiceRequest, ProtocolError, SimState, iso
from .totals import compute_totals, money

VERSION = "1.0-sim"


@dataclass
class Simulator:
    state: SimState
    faults: FaultInjector


class DropConnection(Exception):
    """Raised where the simulated network should hang up instead of answering."""


def _sim(request: Request) -> Simulator:
    return request.app.state.sim


async def gate(request: Request) -> None:
    """Latency and the faults that strike before the authority does anything."""
    sim = _sim(request)
    spec = sim.faults.spec
    # Read the whole request first (it stays cached on the request for the route): closing a
    # socket with unread bytes makes the kernel send RST, which would turn a clean "server hung
    # up" into a random "connection reset" on the client.
    await request.body()
    if spec.latency_ms:
        await asyncio.sleep(spec.latency_ms / 1000)
    fault = sim.faults.before_request()
    if fault == "error":
        raise ProtocolError(503, "UNAVAILABLE", "simulated outage: the service is unavailable")
    if fault == "timeout":
        await asyncio.sleep(spec.timeout_seconds)
        raise ProtocolError(504, "TIMEOUT", "simulated timeout: the request was not processed")
    if fault == "drop":
        raise DropConnection()


async def current_device(request: Request, _: None = Depends(gate)) -> Device:
    scheme, _sep, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ProtocolError(401, "UNAUTHORIZED", "a Bearer token is required")
    device = _sim(request).state.authenticate(token.strip())
    if device is None:
        raise ProtocolError(401, "UNAUTHORIZED", "unknown token")
    if device.revoked:
        raise ProtocolError(401, "UNAUTHORIZED", f"the token of device {device.nim} is revoked")
    return device


# ------------------------------------------------------------------------------------ /api

api = APIRouter(prefix="/api")


@api.get("/info/status")
async def info_status(request: Request, device: Device = Depends(current_device)) -> dict:
    pending = _sim(request).state.pending_of(device.nim)
    return {
        "status": True,
        "version": VERSION,
        "nim": device.nim,
        "nif": device.nif,
        "tokenValid": True,
        "pendingRequestsCount": len(pending),
        "pendingRequestsList": [
            {"uid": r.uid, "rn": r.rn, "created": iso(r.created, "milliseconds")} for r in pending
        ],
    }


def _invoice_answer(request: InvoiceRequest) -> dict:
    return {"uid": request.uid, "rn": request.rn, **copy.deepcopy(request.wire_totals),
            "created": iso(request.created, "milliseconds")}


def _skew(answer: dict) -> None:
    """Make the answer disagree with the seller by 1.00 (one group's VAT, vtotal and total)."""
    one = Decimal("1.00")
    group = answer["totals"][min(answer["totals"])]
    group["vat"] = money(Decimal(group["vat"]) + one)
    answer["vtotal"] = money(Decimal(answer["vtotal"]) + one)
    answer["total"] = money(Decimal(answer["total"]) + one)


@api.post("/invoice")
async def create_invoice(request: Request, device: Device = Depends(current_device)) -> dict:
    sim = _sim(request)
    mismatch = sim.faults.mismatch()  # drawn first, whatever follows, to keep seeds replayable
    try:
        body = parse_invoice_request(await request.body())
    except InvalidRequest as exc:
        raise ProtocolError(400, "INVALID_REQUEST", str(exc)) from None
    if device.nif and body.nif != device.nif:
        raise ProtocolError(400, "INVALID_REQUEST",
                            f"nif {body.nif} is not the NIF of device {device.nim}")
    totals = compute_totals(((i.taxGroup, i.quantity, i.price) for i in body.items), body.mode)
    created = sim.state.create(device, body.rn, body.type, body.nif, totals,
                               sim.faults.spec.expiry_seconds)
    answer = _invoice_answer(created)
    if mismatch:
        _skew(answer)
    if sim.faults.drop_after_create():
        raise DropConnection()  # the request exists at the DGI; the client never learns its uid
    return answer


@api.put("/invoice/{uid}/confirm")
async def confirm_invoice(uid: str, request: Request,
                          device: Device = Depends(current_device)) -> dict:
    sim = _sim(request)
    fault = sim.faults.after_confirm()
    ack, took_effect = sim.state.confirm(device, uid)
    # Only a confirm that took effect can lose its answer in the nasty way; a replayed confirm
    # is just a read and answers promptly so that clients can always recover through it.
    if took_effect and fault == "timeout":
        await asyncio.sleep(sim.faults.spec.timeout_seconds)
    elif took_effect and fault == "drop":
        raise DropConnection()
    return ack


@api.put("/invoice/{uid}/cancel")
async def cancel_invoice(uid: str, request: Request,
                         device: Device = Depends(current_device)) -> dict:
    return _sim(request).state.cancel(device, uid)


# ----------------------------------------------------------------------------------- /_sim

controls = APIRouter(prefix="/_sim")


async def _json_body(request: Request) -> object:
    try:
        return json.loads(await request.body() or b"{}")
    except ValueError as exc:
        raise ProtocolError(400, "INVALID_REQUEST", f"body is not JSON: {exc}") from None


@controls.get("/records")
async def sim_records(request: Request) -> dict:
    return _sim(request).state.records()


@controls.get("/faults")
async def sim_get_faults(request: Request) -> dict:
    return _sim(request).faults.spec.model_dump()


@controls.put("/faults")
async def sim_set_faults(request: Request) -> dict:
    try:
        spec = FaultSpec.model_validate(await _json_body(request))
    except ValidationError as exc:
        raise ProtocolError(400, "INVALID_REQUEST", describe_validation_error(exc)) from None
    _sim(request).faults.set(spec)
    return spec.model_dump()


class DeviceBody(BaseModel):
    token: str
    nif: str | None = None


@controls.put("/devices/{nim}")
async def sim_put_device(nim: str, request: Request) -> dict:
    try:
        body = DeviceBody.model_validate(await _json_body(request))
    except ValidationError as exc:
        raise ProtocolError(400, "INVALID_REQUEST", describe_validation_error(exc)) from None
    _sim(request).state.add_device(Device(nim, body.token, body.nif))
    return {"nim": nim, "nif": body.nif, "revoked": False}


@controls.put("/devices/{nim}/revoke")
async def sim_revoke(nim: str, request: Request) -> dict:
    device = _sim(request).state.set_revoked(nim, True)
    return {"nim": device.nim, "revoked": device.revoked}


@controls.put("/devices/{nim}/restore")
async def sim_restore(nim: str, request: Request) -> dict:
    device = _sim(request).state.set_revoked(nim, False)
    return {"nim": device.nim, "revoked": device.revoked}


@controls.post("/reset")
async def sim_reset(request: Request) -> dict:
    _sim(request).state.reset()
    return {"reset": True}


# ------------------------------------------------------------------------- error answers


async def _protocol_error(request: Request, exc: ProtocolError) -> Response:
    _sim(request).state.count_error(exc.code)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    codes = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}
    code = codes.get(exc.status_code, f"HTTP_{exc.status_code}")
    return JSONResponse({"errorCode": code, "errorDesc": str(exc.detail)},
                        status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    desc = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return JSONResponse({"errorCode": "INVALID_REQUEST", "errorDesc": desc}, status_code=400)


class _TruncatedResponse(Response):
    """Fallback drop outside our server: headers promise a body that never comes."""

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001 - plain ASGI
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", b"64")]})
        raise ConnectionAbortedError("simulated dropped connection")


async def _drop(request: Request, exc: DropConnection) -> Response:
    abort = (request.scope.get("extensions") or {}).get(ABORT_EXTENSION)
    if abort is None:
        return _TruncatedResponse()
    abort()
    # Give the transport a turn to report the loss, so uvicorn knows there is nobody to answer
    # and neither writes the response below nor logs a missing one.
    for _ in range(3):
        await asyncio.sleep(0)
    return Response(status_code=204)


def create_app(devices: dict[str, str], faults: FaultSpec | None = None,
               nifs: dict[str, str] | None = None, *, state_file: str | None = None) -> FastAPI:
    """The simulator app. ``devices`` maps NIM -> token, ``nifs`` NIM -> the taxpayer's NIF.

    Real dropped connections need the protocol classes of ``server.py`` (``SimulatorServer``,
    ``serve``); under another ASGI server a drop degrades to a truncated response.
    """
    nifs = nifs or {}
    state = SimState({nim: Device(nim, token, nifs.get(nim)) for nim, token in devices.items()},
                     state_file=state_file)
    app = FastAPI(title="Stalela e-MCF simulator", version=VERSION,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sim = Simulator(state, FaultInjector(faults))
    app.include_router(api)
    app.include_router(controls)
    app.add_exception_handler(ProtocolError, _protocol_error)
    app.add_exception_handler(DropConnection, _drop)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    return app
