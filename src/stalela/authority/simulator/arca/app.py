"""The HTTP face of the ARCA simulator: WSAA, WSFEv1 and the ``/_sim`` test controls.

Routes stay thin: CMS and TRA checks live in ``cms.py``/``wsaa.py``, the receipt rules in
``rules.py``, the operations in ``wsfe.py``, the memory in ``state.py``, the faults in
``faults.py``. SOAP faults are HTTP 500, as ASMX and Axis send them.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from cryptography import x509
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..server import ABORT_EXTENSION
from . import soap, wsaa, wsfe
from .cms import WsaaFault
from .faults import ArcaFaults, ArcaFaultSpec, describe_validation_error
from .state import ArcaState

WSAA_PATH = "/ws/services/LoginCms"
WSFE_PATH = "/wsfev1/service.asmx"
XML = "text/xml; charset=utf-8"


@dataclass
class ArcaSim:
    """Everything one simulator instance knows; ``app.state.sim`` in the Starlette app."""

    state: ArcaState
    faults: ArcaFaults
    ca: x509.Certificate | None = None


def _sim(request: Request) -> ArcaSim:
    return request.app.state.sim


def _xml(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type=XML)


def _client_fault(message: str) -> Response:
    return _xml(soap.soap_fault("soap:Client", message), 500)


class _TruncatedResponse(Response):
    """A drop outside the simulator's uvicorn: headers promising a body that never comes."""

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001 - plain ASGI
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", XML.encode()), (b"content-length", b"4096")]})
        raise ConnectionAbortedError("simulated dropped connection")


async def _drop(request: Request, mode: str, hang_seconds: float) -> Response:
    """Lose the answer: close the connection at once, or hold it ``hang_seconds`` first."""
    if mode == "hang":
        await asyncio.sleep(hang_seconds)
    abort = (request.scope.get("extensions") or {}).get(ABORT_EXTENSION)
    if abort is None:
        return _TruncatedResponse()
    abort()
    # Let the transport report the loss, so uvicorn neither writes the response below nor
    # logs a missing one.
    for _ in range(3):
        await asyncio.sleep(0)
    return Response(status_code=204)


# ------------------------------------------------------------------------------------ WSAA


async def login_cms(request: Request) -> Response:
    sim = _sim(request)
    body = await request.body()
    refuse = sim.faults.already_authenticated()  # drawn for every call: seeds stay replayable
    try:
        op = soap.body_operation(body)
        if soap.local(op) != "loginCms":
            return _client_fault(f"No such operation '{soap.local(op)}'")
        ticket_xml = wsaa.login(sim.state, op, ca=sim.ca, refuse=refuse)
    except soap.SoapError as exc:
        return _client_fault(str(exc))
    except WsaaFault as fault:
        sim.state.count(f"wsaa.fault.{fault.code}")
        return _xml(soap.wsaa_fault(fault.code, fault.message), 500)
    return _xml(soap.wsaa_response(ticket_xml))


# ---------------------------------------------------------------------------------- WSFEv1


def _operation(request: Request, op: object) -> str:
    """The operation named by SOAPAction (``http://ar.gov.afip.dif.FEV1/<Op>``) or the body."""
    from_body = soap.local(op)  # type: ignore[arg-type]
    action = request.headers.get("soapaction", "").strip().strip('"')
    if action:
        name = action.rsplit("/", 1)[-1]
        if name not in wsfe.OPERATIONS or not action.startswith(soap.FEV1):
            raise soap.SoapError("Server did not recognize the value of HTTP Header SOAPAction: "
                                 f"{action}.")
        if name != from_body:
            raise soap.SoapError(f"SOAPAction {name} does not match the body's {from_body}")
        return name
    if from_body not in wsfe.OPERATIONS:
        raise soap.SoapError(f"Server did not recognize the operation {from_body}.")
    return from_body


async def wsfe_service(request: Request) -> Response:
    sim = _sim(request)
    # Read the whole body first: closing a socket with unread bytes makes the kernel send RST,
    # which would turn a clean "server hung up" into a random "connection reset".
    body = await request.body()
    spec = sim.faults.spec
    if spec.latency_ms:
        await asyncio.sleep(spec.latency_ms / 1000)
    if sim.faults.http500():
        sim.state.count("fault.http500")
        return _xml(soap.soap_fault("soap:Server", "Simulated internal error: the request was "
                                                   "not processed"), 500)
    try:
        op = soap.body_operation(body)
        name = _operation(request, op)
    except soap.SoapError as exc:
        return _client_fault(str(exc))
    draw = sim.faults.drop_after_commit_draw() if name == "FECAESolicitar" else None
    outcome = wsfe.run(sim.state, name, op)
    if outcome.committed and draw is not None and sim.faults.drop_after_commit(draw):
        sim.state.count("fault.drop_after_commit")
        return await _drop(request, spec.drop_mode, spec.hang_seconds)
    return _xml(soap.wsfe_response(name, outcome.result, wsfe.header_info(sim.state)))


# ----------------------------------------------------------------------------------- /_sim


class BadControl(Exception):
    pass


async def _json(request: Request) -> dict:
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError as exc:
        raise BadControl(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadControl("body must be a JSON object")
    return data


async def sim_state(request: Request) -> Response:
    return JSONResponse(_sim(request).state.snapshot())


async def sim_faults(request: Request) -> Response:
    sim = _sim(request)
    if request.method == "PUT":
        try:
            sim.faults.set(ArcaFaultSpec.model_validate(await _json(request)))
        except ValidationError as exc:
            raise BadControl(describe_validation_error(exc)) from None
    return JSONResponse(sim.faults.spec.model_dump() | {"forced": sim.faults.forced()})


async def sim_force(request: Request) -> Response:
    """``{"fault": "drop_after_commit"|"http500"|"already_authenticated", "times": 1}``."""
    data = await _json(request)
    times = data.get("times", 1)
    if not isinstance(times, int) or isinstance(times, bool):
        raise BadControl("times must be an integer")
    try:
        _sim(request).faults.force(str(data.get("fault")), times)
    except ValueError as exc:
        raise BadControl(str(exc)) from None
    return JSONResponse({"forced": _sim(request).faults.forced()})


async def sim_series(request: Request) -> Response:
    """``PUT /_sim/series/{cuit}/{pos}/{type}`` ``{"last": n, "date": "yyyymmdd"?}``."""
    p = request.path_params
    data = await _json(request)
    last, when = data.get("last"), data.get("date")
    if not isinstance(last, int) or isinstance(last, bool) or last < 0:
        raise BadControl("last must be an integer >= 0")
    if when is not None and not (isinstance(when, str) and len(when) == 8 and when.isdigit()):
        raise BadControl("date must be yyyymmdd")
    series = _sim(request).state.set_last(p["cuit"], p["pos"], p["type"], last, when)
    return JSONResponse({"last": series.last, "last_date": series.last_date})


async def sim_clock(request: Request) -> Response:
    """``POST /_sim/clock {"advance_seconds": s}``: move the simulator's clock (never back)."""
    seconds = (await _json(request)).get("advance_seconds", 0)
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
        raise BadControl("advance_seconds must be a number >= 0")
    return JSONResponse({"now": _sim(request).state.advance(seconds).isoformat()})


async def sim_expire_tickets(request: Request) -> Response:
    return JSONResponse({"expired": _sim(request).state.expire_tickets()})


async def sim_reset(request: Request) -> Response:
    _sim(request).state.reset()
    return JSONResponse({"reset": True})


async def _bad_control(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=400)


def create_app(faults: ArcaFaultSpec | None = None, *, ca: x509.Certificate | None = None,
               state_file: str | None = None) -> Starlette:
    """The simulator app. ``ca``: require WSAA certificates issued by it (else any signer).

    Real dropped connections need the protocol classes of ``..server`` (``SimulatorServer``,
    ``serve``); under another ASGI server a drop degrades to a truncated response.
    """
    routes = [
        Route(WSAA_PATH, login_cms, methods=["POST"]),
        Route(WSFE_PATH, wsfe_service, methods=["POST"]),
        Route("/_sim/state", sim_state, methods=["GET"]),
        Route("/_sim/faults", sim_faults, methods=["GET", "PUT"]),
        Route("/_sim/faults/force", sim_force, methods=["POST"]),
        Route("/_sim/series/{cuit:str}/{pos:int}/{type:int}", sim_series, methods=["PUT"]),
        Route("/_sim/clock", sim_clock, methods=["POST"]),
        Route("/_sim/tickets/expire", sim_expire_tickets, methods=["POST"]),
        Route("/_sim/reset", sim_reset, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={BadControl: _bad_control})
    app.state.sim = ArcaSim(ArcaState(state_file=state_file), ArcaFaults(faults), ca)
    return app
