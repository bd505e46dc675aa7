"""The ``/_sim`` test controls: make orders happen, subscribe, inspect deliveries, set faults.

Not a platform API: no authentication, answers ``{"detail": ...}`` on errors.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from stalela.authority.simulator.faults import describe_validation_error

from .base import Simulator
from .common import SimError, json_body
from .faults import FaultSpec

controls = APIRouter(prefix="/_sim")


def _sim(request: Request) -> Simulator:
    sim: Simulator = request.app.state.sim
    # WooCommerce's X-WC-Webhook-Source is the store's own URL: the one tests talk to.
    sim.public_url = str(request.base_url)
    return sim


def _fail(status: int, detail: str) -> SimError:
    return SimError(status, {"detail": detail})


async def _object(request: Request) -> dict[str, Any]:
    body = json_body(await request.body())
    if not isinstance(body, dict):
        raise _fail(400, "the body must be a JSON object")
    return body


def _inspect(sim: Simulator, order_id: int) -> dict:
    order = sim.store.get(order_id)
    if order is None:
        raise _fail(404, f"order {order_id} does not exist")
    return sim.platform.inspect(order)


@controls.post("/orders", status_code=201)
async def create_order(request: Request) -> dict:
    sim = _sim(request)
    try:
        order = sim.create_order(await _object(request))
    except (ValueError, KeyError, TypeError) as exc:
        raise _fail(400, f"cannot build the order: {exc}") from None
    return sim.platform.inspect(order)


@controls.get("/orders")
def list_orders(request: Request) -> list[dict]:
    sim = _sim(request)
    return [_inspect(sim, i) for i in sim.store.sorted_ids()]


@controls.get("/orders/{order_id:int}")
def get_order(order_id: int, request: Request) -> dict:
    return _inspect(_sim(request), order_id)


async def _change(request: Request, order_id: int, action: str) -> dict:
    sim = _sim(request)
    fields = await _object(request) if action == "patch" else None
    try:
        order = sim.change_order(order_id, action, fields)
    except KeyError:
        raise _fail(404, f"order {order_id} does not exist") from None
    except ValueError as exc:
        raise _fail(409, str(exc)) from None
    return sim.platform.inspect(order)


@controls.post("/orders/{order_id:int}/pay")
async def pay(order_id: int, request: Request) -> dict:
    return await _change(request, order_id, "pay")


@controls.post("/orders/{order_id:int}/refund")
async def refund(order_id: int, request: Request) -> dict:
    return await _change(request, order_id, "refund")


@controls.patch("/orders/{order_id:int}")
async def patch(order_id: int, request: Request) -> dict:
    return await _change(request, order_id, "patch")


@controls.post("/webhooks", status_code=201)
async def subscribe(request: Request) -> dict:
    sim = _sim(request)
    body = await _object(request)
    address, topics = body.get("address"), body.get("topics")
    if not isinstance(address, str) or not address.startswith(("http://", "https://")):
        raise _fail(400, "address must be an http(s) URL")
    if topics is not None and not (isinstance(topics, list) and topics):
        raise _fail(400, "topics must be a non-empty list")
    try:
        sub = sim.subscribe(address, body.get("secret"), topics, str(body.get("name") or ""))
    except ValueError as exc:
        raise _fail(400, str(exc)) from None
    return sub.view()


@controls.get("/webhooks")
def subscriptions(request: Request) -> list[dict]:
    sim = _sim(request)
    with sim.store.lock:
        return [s.view() for s in sim.store.subscriptions.values()]


@controls.delete("/webhooks/{sub_id:int}", status_code=204)
def unsubscribe(sub_id: int, request: Request) -> None:
    sim = _sim(request)
    with sim.store.lock:
        if sim.store.subscriptions.pop(sub_id, None) is None:
            raise _fail(404, f"webhook {sub_id} does not exist")
        # A delivery still on its way stops at its next attempt.


@controls.get("/deliveries")
def deliveries(request: Request) -> list[dict]:
    sim = _sim(request)
    wanted = {k: v for k, v in request.query_params.items()
              if k in ("event_id", "topic", "subscription_id", "order_id", "outcome")}
    with sim.store.lock:
        entries = list(sim.store.deliveries)
    return [e for e in entries if all(str(e.get(k)) == v for k, v in wanted.items())]


@controls.get("/status")
def status(request: Request) -> dict:
    sim = _sim(request)
    return {"platform": sim.platform.name, "orders": len(sim.store.orders),
            "pending": sim.dispatcher.pending, "held": len(sim.dispatcher.held),
            "deliveries": len(sim.store.deliveries),
            "now": sim.store.clock.now().isoformat()}


@controls.get("/faults")
def get_faults(request: Request) -> dict:
    return _sim(request).faults.spec.model_dump()


@controls.post("/faults")
@controls.put("/faults")
async def set_faults(request: Request) -> dict:
    sim = _sim(request)
    try:
        spec = FaultSpec.model_validate(await _object(request))
    except ValidationError as exc:
        raise _fail(422, describe_validation_error(exc)) from None
    sim.faults.set(spec)
    return spec.model_dump()


@controls.post("/flush")
async def flush(request: Request) -> dict:
    jobs = _sim(request).dispatcher.flush()
    return {"released": len(jobs),
            "order": [{"event_id": j.event.id, "topic": j.event.topic, "order_id": j.event.order_id,
                       "subscription_id": j.sub.id} for j in jobs]}


@controls.post("/tokens", status_code=201)
async def tokens(request: Request) -> dict:
    sim = _sim(request)
    body = json_body(await request.body())
    return sim.platform.credentials(body if isinstance(body, dict) else {})


@controls.post("/clock")
async def clock(request: Request) -> JSONResponse:
    sim = _sim(request)
    body = await _object(request)
    try:
        seconds = float(body.get("advance_s", 0))
    except (TypeError, ValueError):
        raise _fail(400, "advance_s must be a number of seconds") from None
    if seconds < 0:
        raise _fail(400, "the clock only moves forward")
    sim.store.clock.advance(seconds)
    return JSONResponse({"now": sim.store.clock.now().isoformat()})
