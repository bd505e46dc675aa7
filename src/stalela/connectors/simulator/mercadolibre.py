"""Mercado Libre: OAuth with rotating refresh tokens, orders, billing info, fiscal documents.

Notifications are unsigned pointers (``{"resource": "/orders/<id>", "topic": "orders_v2", ...}``):
trust comes from re-fetching the order with the seller's token. A notification not answered with
200 within 500 ms is retried; Mercado Libre documents only that it retries (for about an hour), so
the schedule here is a choice: 6 retries doubling from one minute, an hour in all
(``Options.retry_delays_s`` changes it). ``attempts`` and ``sent`` change on every attempt; ``_id``
and ``received`` do not.
"""
from __future__ import annotations

import copy
import hashlib
import secrets
import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from .base import Change, Platform, Simulator
from .common import SimError, api_gate, dec, fields, iso_offset, json_bytes, number, total

if TYPE_CHECKING:
    from .deliveries import Job

APP_ID = 4455667788990011
SELLER_ID = 123456789
BUYER_ID = 987654321
MAX_DOCUMENT_BYTES = 1024 * 1024
DEFAULT_TTL_S = 21600.0
INVALID_GRANT = ("Error validating grant. Your authorization code or refresh token may be "
                 "expired or it was already used")


def _ml_error(status: int, error: str, message: str) -> SimError:
    return SimError(status, {"message": message, "error": error, "status": status, "cause": []})


class MercadoLibre(Platform):
    name = "mercadolibre"
    full_body = False
    topics = ("orders_v2",)
    retry_delays_s = (60.0, 120.0, 240.0, 480.0, 960.0, 1740.0)  # an hour (confirm)
    timeout_s = 0.5
    connect_timeout_s = 0.5
    default_port = 8772
    resolution_us = 1000
    first_order_id = 2_000_000_000_000_001
    utc_offset = "-04:00"
    computed = frozenset({"total_amount", "paid_amount", "tags"})
    updated_fields = ("last_updated",)

    def __init__(self, sim: Simulator) -> None:
        super().__init__(sim)
        self.packs: dict[int, list[dict]] = {}  # pack id -> fiscal documents (metadata + bytes)

    def time(self, moment: datetime) -> str:
        return iso_offset(moment, self.utc_offset, millis=True)

    # -------------------------------------------------------------- orders

    def build(self, partial: dict, now: datetime) -> dict:
        o = self.new_order(partial)
        billing = o.pop("billing_info", None)
        if billing is not None or "billing_info" not in self.store.extras[o["id"]]:
            self.store.extras[o["id"]]["billing_info"] = self._billing(billing or {})
        o.setdefault("status", "payment_required")
        o.setdefault("status_detail", None)
        o.setdefault("date_created", self.time(now))
        o.setdefault("date_closed", None)
        o.setdefault("last_updated", self.time(now))
        o.setdefault("pack_id", None)
        o.setdefault("currency_id", "ARS")
        raw_items = o.get("order_items") or [{"quantity": 1, "unit_price": 1210}]
        o["order_items"] = [self._item(raw, o["currency_id"]) for raw in raw_items]
        o.setdefault("total_amount", number(total(
            [dec(i["unit_price"]) * i["quantity"] for i in o["order_items"]])))
        o.setdefault("shipping", {"id": self.store.next_id("shipment", 40_000_000_001)})
        o.setdefault("buyer", {"id": BUYER_ID, "nickname": "COMPRADOR_TEST"})
        o.setdefault("seller", {"id": SELLER_ID})
        o.setdefault("payments", [])
        if o["status"] == "paid" and not o["payments"]:
            self._paid(o, now)
        o["payments"] = [{**p, "transaction_amount": number(p["transaction_amount"])}
                         for p in o["payments"]]
        o.setdefault("paid_amount", number(total(
            [p["transaction_amount"] for p in o["payments"] if p["status"] == "approved"])))
        o.setdefault("tags", self._tags(o))
        return o

    def _item(self, raw: dict, currency: str) -> dict:
        line = dict(raw)
        n = self.store.next_id("item", 1_000_000_001)
        line["item"] = {"id": f"MLA{n}", "title": "Remera", "seller_sku": f"SKU-{n}",
                        "variation_id": None, **line.get("item", {})}
        line["quantity"] = int(line.get("quantity", 1))
        line["unit_price"] = number(line.get("unit_price", 1210))
        line["full_unit_price"] = number(line.get("full_unit_price", line["unit_price"]))
        line.setdefault("currency_id", currency)
        return line

    def _billing(self, raw: dict) -> dict:
        info = {"name": "Ana", "last_name": "García",
                "identification": {"type": "DNI", "number": "30123456"},
                "taxes": {"taxpayer_type": {"id": "01", "description": "Consumidor Final"}},
                "address": {"street_name": "Av. Corrientes", "street_number": "1234",
                            "city_name": "Buenos Aires", "state": {"name": "Capital Federal"},
                            "zip_code": "1043", "country_id": "AR"},
                "attributes": {"vat_discriminated_billing": False, "cust_type": "CO"}}
        info.update(raw)
        return info

    def _tags(self, o: dict) -> list[str]:
        tags = ["paid"] if o["status"] == "paid" else []
        return tags + (["pack_order"] if o["pack_id"] else []) + ["not_delivered"]

    def _paid(self, o: dict, now: datetime) -> None:
        o["status"] = "paid"
        o["date_closed"] = self.time(now)
        o["payments"] = [{"id": self.store.next_id("payment", 80_000_000_001), "order_id": o["id"],
                          "payer_id": o["buyer"]["id"], "status": "approved",
                          "status_detail": "accredited", "currency_id": o["currency_id"],
                          "transaction_amount": o["total_amount"],
                          "date_approved": self.time(now), "date_created": self.time(now)}]

    def created(self, order: dict) -> Change:
        return Change().add("orders_v2")

    def pay(self, order: dict, now: datetime) -> Change:
        self.require(order, "status", ("payment_required", "payment_in_process", "confirmed"),
                     "payable")
        self._paid(order, now)
        order["paid_amount"] = order["total_amount"]
        order["tags"] = self._tags(order)
        return Change().add("orders_v2")

    def refund(self, order: dict, now: datetime) -> Change:
        self.require(order, "status", ("paid",), "refundable")
        for payment in order["payments"]:
            payment.update(status="refunded", status_detail="refunded")
        # Whether a fully refunded order shows "cancelled" is not documented (confirm).
        order["status"] = "cancelled"
        order["cancel_detail"] = {"group": "refund", "code": "refunded", "requested_by": "seller",
                                  "description": "The payment was refunded",
                                  "date": self.time(now)}
        return Change().add("orders_v2")

    def patched(self, before: dict, after: dict) -> Change:
        return Change().add("orders_v2")

    def inspect(self, order: dict) -> dict:
        pack = order["pack_id"] or order["id"]
        with self.store.lock:
            documents = [self._document_view(d) for d in self.packs.get(pack, [])]
            billing = copy.deepcopy(self.store.extras[order["id"]].get("billing_info"))
        return {**order, "fiscal_documents": documents, "billing_info": billing}

    # -------------------------------------------------------------- notifications

    def payload(self, topic: str, order: dict) -> dict:
        return {"_id": str(uuid.uuid4()), "resource": f"/orders/{order['id']}",
                "user_id": order["seller"]["id"], "topic": topic, "application_id": APP_ID,
                "attempts": 1, "sent": None, "received": self.time(self.store.clock.now())}

    def request(self, job: Job, attempt: int) -> tuple[dict[str, str], bytes]:
        body = {**job.payload, "attempts": attempt, "sent": self.time(self.store.clock.now())}
        return {"Content-Type": "application/json",
                "User-Agent": "MercadoLibre-Notifications"}, json_bytes(body)

    def success(self, status: int) -> bool:
        return status == 200  # "respond with HTTP 200", not any 2xx

    def signing_secret(self, requested: str | None) -> str | None:
        return None  # notifications are not signed

    # -------------------------------------------------------------- API

    def error(self, status: int, message: str) -> SimError:
        kinds = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 409: "conflict", 503: "service_unavailable"}
        return _ml_error(status, kinds.get(status, "error"), message)

    def _ttl(self) -> float:
        for ttl in (self.sim.faults.spec.token_ttl_s, self.sim.options.token_ttl_s):
            if ttl is not None:
                return ttl
        return DEFAULT_TTL_S

    def _grant(self, user_id: int) -> dict:
        ttl = self._ttl()
        stamp = self.store.clock.now().strftime("%m%d%H")
        access = self.store.issue_token(
            user_id, ttl_s=ttl,
            token=f"APP_USR-{APP_ID}-{stamp}-{secrets.token_hex(16)}-{user_id}")
        refresh = self.store.issue_refresh(str(APP_ID), user_id)
        return {"access_token": access.token, "token_type": "Bearer", "expires_in": int(ttl),
                "scope": "offline_access read write", "user_id": user_id,
                "refresh_token": refresh.token}

    def credentials(self, body: dict) -> dict:
        user_id = int(body.get("user_id") or SELLER_ID)
        return {"client_id": str(APP_ID), "client_secret": self.sim.options.secret,
                **self._grant(user_id), "code": self.store.issue_code(str(APP_ID), user_id),
                "redirect_uri": "https://stalela.example/oauth/mercadolibre"}

    def authenticate(self, request: Request) -> int:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        verdict, found = ("unknown", None)
        if scheme.lower() == "bearer" and token.strip():
            verdict, found = self.store.check_token(token.strip(), self.sim.faults.spec.token_ttl_s)
        if verdict != "ok" or found is None:
            raise _ml_error(401, "unauthorized", "invalid access token")
        return int(found.subject)

    def router(self) -> APIRouter:
        router = APIRouter(dependencies=[Depends(api_gate)])
        router.add_api_route("/oauth/token", self.oauth_token, methods=["POST"])
        router.add_api_route("/users/me", self.me, methods=["GET"])
        router.add_api_route("/orders/search", self.search, methods=["GET"])
        router.add_api_route("/orders/{order_id:int}", self.get_order, methods=["GET"])
        router.add_api_route("/orders/{order_id:int}/billing_info", self.billing_info,
                             methods=["GET"])
        router.add_api_route("/packs/{pack_id:int}", self.get_pack, methods=["GET"])
        router.add_api_route("/packs/{pack_id:int}/fiscal_documents", self.upload,
                             methods=["POST"], status_code=201)
        router.add_api_route("/packs/{pack_id:int}/fiscal_documents", self.documents,
                             methods=["GET"])
        router.add_api_route("/packs/{pack_id:int}/fiscal_documents/{document_id}",
                             self.download, methods=["GET"])
        return router

    async def oauth_token(self, request: Request) -> dict:
        # Mercado Libre also takes the fields in the query string.
        body = {**dict(request.query_params), **await fields(request)}
        secret = self.sim.options.secret
        if body.get("client_id") != str(APP_ID) or body.get("client_secret") != secret:
            raise _ml_error(400, "invalid_client", "invalid client_id or client_secret")
        grant = body.get("grant_type")
        if grant == "refresh_token":
            used = self.store.use_refresh(str(body.get("refresh_token", "")), str(APP_ID))
            if used is None:
                raise _ml_error(400, "invalid_grant", INVALID_GRANT)
            return self._grant(used.subject)
        if grant == "authorization_code":
            if not body.get("redirect_uri"):
                raise _ml_error(400, "invalid_request", "redirect_uri is required")
            code = self.store.use_code(str(body.get("code", "")), str(APP_ID))
            if code is None:
                raise _ml_error(400, "invalid_grant", INVALID_GRANT)
            return self._grant(int(code.subject))
        raise _ml_error(400, "unsupported_grant_type", f"unsupported grant_type {grant!r}")

    def me(self, request: Request) -> dict:
        user_id = self.authenticate(request)
        return {"id": user_id, "nickname": f"SELLER_{user_id}", "site_id": "MLA",
                "country_id": "AR"}

    def _order_for(self, request: Request, order_id: int) -> dict:
        user_id = self.authenticate(request)
        order = self.store.get(order_id)
        if order is None:
            raise _ml_error(404, "not_found", "Order not found")
        if user_id not in (order["seller"]["id"], order["buyer"]["id"]):
            raise _ml_error(403, "forbidden", "Invalid caller.id")
        return order

    def get_order(self, order_id: int, request: Request) -> dict:
        return self._order_for(request, order_id)

    def billing_info(self, order_id: int, request: Request) -> dict:
        self._order_for(request, order_id)
        with self.store.lock:
            info = copy.deepcopy(self.store.extras[order_id]["billing_info"])
        if request.headers.get("x-version") == "2":
            return {"buyer": {"cust_id": BUYER_ID, "billing_info": info},
                    "seller": {"cust_id": SELLER_ID}}
        ident = info["identification"]
        return {"billing_info": {"doc_type": ident["type"], "doc_number": ident["number"],
                                 "additional_info": [{"type": "FIRST_NAME", "value": info["name"]},
                                                     {"type": "LAST_NAME",
                                                      "value": info["last_name"]}]}}

    def search(self, request: Request) -> dict:
        from .listing import mercadolibre_search

        return mercadolibre_search(self, request, self.authenticate(request))

    def get_pack(self, pack_id: int, request: Request) -> dict:
        """``GET /packs/{pack_id}`` (Mercado Libre's "Gestionar packs"): the pack and its orders' ids. Only a
        real pack: an order without ``pack_id`` is no pack (404), unlike the fiscal-document routes."""
        self._pack(request, pack_id)
        with self.store.lock:
            members = sorted((o for o in self.store.orders.values() if o["pack_id"] == pack_id),
                             key=lambda o: o["id"])
        if not members:
            raise _ml_error(404, "not_found", f"Pack {pack_id} not found")
        return {"id": pack_id, "status": "released", "date_created": members[0]["date_created"],
                "buyer": {"id": members[0]["buyer"]["id"]}, "orders": [{"id": o["id"]} for o in members]}

    # -------------------------------------------------------------- fiscal documents

    def _pack(self, request: Request, pack_id: int) -> int:
        """The pack's seller check; a pack is the orders sharing ``pack_id``, or one order."""
        user_id = self.authenticate(request)
        with self.store.lock:
            members = [o for o in self.store.orders.values()
                       if o["pack_id"] == pack_id or (o["id"] == pack_id and not o["pack_id"])]
        if not members:
            raise _ml_error(404, "not_found", f"Pack {pack_id} not found")
        if any(o["seller"]["id"] != user_id for o in members):
            raise _ml_error(403, "forbidden", "Invalid caller.id")
        return pack_id

    async def upload(self, pack_id: int, request: Request) -> dict:
        self._pack(request, pack_id)
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise _ml_error(400, "bad_request", "the request must be multipart/form-data")
        form = await request.form()
        files = [f for f in form.getlist("fiscal_document") if isinstance(f, UploadFile)]
        if not files:
            raise _ml_error(400, "bad_request", "the file field fiscal_document is required")
        documents = []
        for upload in files:
            data = await upload.read()
            kind = (upload.content_type or "").split(";")[0].strip().lower()
            if len(data) > MAX_DOCUMENT_BYTES:
                raise _ml_error(400, "bad_request", "file too large: the maximum is 1 MB")
            if kind == "application/pdf" and data.startswith(b"%PDF-"):
                documents.append(("pdf", upload.filename, kind, data))
            elif kind in ("application/xml", "text/xml"):
                documents.append(("xml", upload.filename, kind, data))
            else:
                raise _ml_error(400, "bad_request",
                                f"invalid file {upload.filename!r}: a PDF (and optionally an XML)")
        kinds = [d[0] for d in documents]
        if kinds.count("pdf") != 1 or kinds.count("xml") > 1:
            raise _ml_error(400, "bad_request", "send one PDF and at most one XML")
        now = self.time(self.store.clock.now())
        with self.store.lock:
            if self.packs.get(pack_id):
                raise _ml_error(409, "conflict", "pack already has a fiscal document")
            stored = [{"id": uuid.uuid4().hex, "file_type": kind, "filename": name,
                       "content_type": ctype, "size": len(data),
                       "sha256": hashlib.sha256(data).hexdigest(), "date_created": now,
                       "data": data} for kind, name, ctype, data in documents]
            self.packs[pack_id] = stored
        return {"ids": [d["id"] for d in stored]}

    @staticmethod
    def _document_view(document: dict) -> dict:
        return {k: v for k, v in document.items() if k != "data"}

    def documents(self, pack_id: int, request: Request) -> JSONResponse:
        self._pack(request, pack_id)
        with self.store.lock:
            documents = [self._document_view(d) for d in self.packs.get(pack_id, [])]
        return JSONResponse({"pack_id": pack_id, "ids": [d["id"] for d in documents],
                             "fiscal_documents": documents})

    def download(self, pack_id: int, document_id: str, request: Request) -> Response:
        self._pack(request, pack_id)
        with self.store.lock:
            found = next((d for d in self.packs.get(pack_id, []) if d["id"] == document_id), None)
        if found is None:
            raise _ml_error(404, "not_found", "Fiscal document not found")
        return Response(found["data"], media_type=found["content_type"])
