"""WooCommerce (REST ``/wp-json/wc/v3``): orders, notes and meta write-back, webhooks, no retry.

A delivery is the whole order as ``wp_json_encode`` writes it (``\\/`` and ``\\uXXXX`` escapes),
signed ``X-WC-Webhook-Signature`` = base64(HMAC-SHA256(webhook secret, raw body)), with a new
``X-WC-Webhook-Delivery-ID`` each time. There is no retry. A 2xx, 301 or 302 answer is a success
and resets the webhook's failure count; anything else (or no answer within 60 s) adds one, and
after ``Options.disable_after`` (5) consecutive failures the webhook is ``disabled`` until a
``PUT /webhooks/{id} {"status": "active"}``. Creating a webhook pings it with an unsigned form
body ``webhook_id=<id>``.
"""
from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import secrets
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from stalela.kit.money import multiply_money, round_money_ratio

from .base import Change, Platform, Simulator
from .common import SimError, api_gate, dec, fill, json_body, json_bytes, money, number, total
from .state import Subscription

if TYPE_CHECKING:
    from .deliveries import Job

API = "/wp-json/wc/v3"
USER_AGENT = "WooCommerce/9.5.0 Hookshot (WordPress/6.7.1)"
DEFAULT_TAX = [{"rate_id": 1, "label": "IVA", "rate_percent": 21}]
DEFAULTS = {
    "status": "pending", "currency": "USD", "prices_include_tax": False, "version": "9.5.0",
    "created_via": "checkout", "fee_lines": [], "coupon_lines": [], "refunds": [],
    "billing": {"first_name": "Ana", "last_name": "García", "company": "",
                "address_1": "Av. Corrientes 1234", "address_2": "", "city": "Buenos Aires",
                "state": "C", "postcode": "1043", "country": "AR",
                "email": "ana.garcia@example.com", "phone": "+5491155555555"},
    "shipping": {}, "customer_id": 0, "customer_note": "", "payment_method": "bacs",
    "payment_method_title": "Transferencia bancaria", "transaction_id": "",
}


def _wc_error(status: int, code: str, message: str) -> SimError:
    return SimError(status, {"code": code, "message": message, "data": {"status": status}})


class WooCommerce(Platform):
    name = "woocommerce"
    full_body = True
    topics = ("order.created", "order.updated")
    retry_delays_s = ()  # never
    timeout_s = 60.0  # MINUTE_IN_SECONDS in WC_Webhook::deliver
    connect_timeout_s = 60.0
    default_port = 8774
    computed = frozenset({"total", "total_tax", "cart_tax", "discount_total", "discount_tax",
                          "shipping_total", "shipping_tax"})
    updated_fields = ("date_modified", "date_modified_gmt")

    def __init__(self, sim: Simulator) -> None:
        super().__init__(sim)
        self.notes: dict[int, list[dict]] = {}

    first_order_id = 101
    utc_format = "%Y-%m-%dT%H:%M:%S"  # the _gmt fields carry no offset (site zone UTC: local = GMT)

    # -------------------------------------------------------------- orders

    def build(self, partial: dict, now: datetime) -> dict:
        o = self.new_order(partial)
        o.setdefault("number", str(o["id"]))
        o.setdefault("order_key", f"wc_order_{secrets.token_hex(6)}")
        fill(o, DEFAULTS)
        for name in ("date_created", "date_modified"):
            o.setdefault(name, self.time(now))
            o.setdefault(f"{name}_gmt", o[name])
        for name in ("date_paid", "date_completed"):
            o.setdefault(name, None)
            o.setdefault(f"{name}_gmt", o[name])
        rates = o.get("tax_lines") or DEFAULT_TAX
        rate = dec(rates[0]["rate_percent"]) / 100
        included = bool(o["prices_include_tax"])
        raw = o.get("line_items") or [{"name": "Remera", "quantity": 1, "price": "100.00"}]
        o["line_items"] = [self._line(x, rate, rates[0]["rate_id"], included) for x in raw]
        o["shipping_lines"] = [self._shipping(x, rate, rates[0]["rate_id"])
                               for x in o.get("shipping_lines", [])]
        o["meta_data"] = [self._meta(m) for m in o.get("meta_data", [])]
        self._totals(o, rates)
        return o

    def _line(self, raw: dict, rate: Decimal, rate_id: int, included: bool) -> dict:
        line = dict(raw)
        line.setdefault("id", self.store.next_id("line", 1001))
        line.setdefault("name", "Producto")
        line.setdefault("product_id", self.store.next_id("product", 501))
        line.setdefault("variation_id", 0)
        line.setdefault("sku", f"SKU-{line['product_id']}")
        line.setdefault("tax_class", "")
        line["quantity"] = int(line.get("quantity", 1))
        gross = dec(line.get("price", "100.00")) * line["quantity"]
        if "subtotal" in line:  # given as WooCommerce stores it: net, tax apart
            net = dec(line["subtotal"])
            tax = dec(line.get("subtotal_tax", multiply_money(net, rate)))
        elif included:  # the price a shopper saw holds the tax: net = gross / (1 + rate)
            net = round_money_ratio(gross, 1 + rate)
            tax = gross - net
        else:
            net, tax = gross, multiply_money(gross, rate)
        line["subtotal"], line["subtotal_tax"] = money(net), money(tax)
        line["total"] = money(line.get("total", net))  # after coupons; none by default
        if "total_tax" not in line:
            after = dec(line["total"])
            line["total_tax"] = money(tax if after == net else multiply_money(after, rate))
        line["total_tax"] = money(line["total_tax"])
        line["taxes"] = [{"id": rate_id, "total": line["total_tax"],
                          "subtotal": line["subtotal_tax"]}]
        # WooCommerce's line price is a JSON number: the line total over its quantity, net.
        line["price"] = number(round_money_ratio(dec(line["total"]), line["quantity"]))
        line.setdefault("meta_data", [])
        return line

    def _shipping(self, raw: dict, rate: Decimal, rate_id: int) -> dict:
        line = dict(raw)
        line.setdefault("id", self.store.next_id("shipping_line", 2001))
        line.setdefault("method_title", "Envío a domicilio")
        line.setdefault("method_id", "flat_rate")
        line["total"] = money(line.get("total", "0.00"))
        line["total_tax"] = money(line.get("total_tax", multiply_money(dec(line["total"]), rate)))
        line["taxes"] = [{"id": rate_id, "total": line["total_tax"], "subtotal": ""}]
        return line

    def _meta(self, raw: dict) -> dict:
        return {"id": raw.get("id") or self.store.next_id("meta", 9001), "key": raw["key"],
                "value": raw.get("value")}

    def _totals(self, o: dict, rates: list[dict]) -> None:
        lines, shipping = o["line_items"], o["shipping_lines"]
        cart_tax = total([x["total_tax"] for x in lines])
        shipping_tax = total([x["total_tax"] for x in shipping])
        discount = total([dec(x["subtotal"]) - dec(x["total"]) for x in lines])
        net = total([x["total"] for x in lines]) + total([x["total"] for x in shipping])
        fees = total([x.get("total", "0") for x in o["fee_lines"]])
        o.setdefault("discount_total", money(discount))
        o.setdefault("discount_tax", money(total([dec(x["subtotal_tax"]) - dec(x["total_tax"])
                                                  for x in lines])))
        o.setdefault("shipping_total", money(total([x["total"] for x in shipping])))
        o.setdefault("shipping_tax", money(shipping_tax))
        o.setdefault("cart_tax", money(cart_tax))
        o.setdefault("total_tax", money(cart_tax + shipping_tax))
        o.setdefault("total", money(net + fees + cart_tax + shipping_tax))
        # One rate (the first) applies to every taxable line: enough for a fiscal mapping test.
        o["tax_lines"] = [{"id": r.get("id") or self.store.next_id("tax_line", 3001),
                           "rate_code": f"AR-{r['label']}-{r['rate_id']}",
                           "rate_id": r["rate_id"], "label": r["label"], "compound": False,
                           "rate_percent": r["rate_percent"],
                           "tax_total": money(cart_tax if i == 0 else 0),
                           "shipping_tax_total": money(shipping_tax if i == 0 else 0)}
                          for i, r in enumerate(rates[:1])]

    def created(self, order: dict) -> Change:
        return Change().add("order.created")

    def pay(self, order: dict, now: datetime) -> Change:
        self.require(order, "status", ("pending", "on-hold", "failed"), "payable")
        order["status"] = "processing"
        order["date_paid"] = order["date_paid_gmt"] = self.time(now)
        order["transaction_id"] = f"txn_{secrets.token_hex(6)}"
        return Change().add("order.updated")

    def refund(self, order: dict, now: datetime) -> Change:
        self.require(order, "status", ("processing", "completed", "on-hold"), "refundable")
        order["status"] = "refunded"
        order["refunds"].append({"id": self.store.next_id("refund", 4001), "reason": "",
                                 "total": money(-dec(order["total"]))})
        return Change().add("order.updated")

    def patched(self, before: dict, after: dict) -> Change:
        return Change().add("order.updated")

    def inspect(self, order: dict) -> dict:
        with self.store.lock:
            return {**order, "notes": copy.deepcopy(self.notes.get(order["id"], []))}

    # -------------------------------------------------------------- webhooks

    def payload(self, topic: str, order: dict) -> dict:
        return copy.deepcopy(order)

    def request(self, job: Job, attempt: int) -> tuple[dict[str, str], bytes]:
        body = json_bytes(job.payload, ascii_only=True, escape_slashes=True)
        digest = hmac.new(job.sub.secret.encode(), body, hashlib.sha256).digest()
        resource, _, event = job.event.topic.partition(".")
        return {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                "X-WC-Webhook-Source": self.sim.public_url, "X-WC-Webhook-Topic": job.event.topic,
                "X-WC-Webhook-Resource": resource, "X-WC-Webhook-Event": event,
                "X-WC-Webhook-Signature": base64.b64encode(digest).decode(),
                "X-WC-Webhook-ID": str(job.sub.id),
                "X-WC-Webhook-Delivery-ID": str(self.store.next_id("delivery", 1))}, body

    def success(self, status: int) -> bool:
        return 200 <= status < 303  # "a 2xx, 301 or 302 response code" (class-wc-webhook.php)

    def after_attempt(self, sub: Subscription, ok: bool) -> None:
        with self.store.lock:
            if ok:
                sub.failure_count = 0
                return
            sub.failure_count += 1
            if sub.failure_count >= self.sim.options.disable_after and sub.status == "active":
                sub.status = "disabled"

    def subscribed(self, sub: Subscription) -> None:
        body = f"webhook_id={sub.id}".encode()
        headers = {"User-Agent": USER_AGENT, "Content-Type": "application/x-www-form-urlencoded"}

        async def ping() -> None:
            status, error, took = await self.sim.dispatcher.post(sub.address, body, headers)
            self.sim.dispatcher.log_ping(sub, status, error, took, body)

        self.sim.dispatcher.spawn(ping())

    # -------------------------------------------------------------- API

    def error(self, status: int, message: str) -> SimError:
        return _wc_error(status, "woocommerce_rest_error", message)

    def credentials(self, body: dict) -> dict:
        key = self.store.issue_token("woo", token=f"ck_{secrets.token_hex(20)}",
                                     secret=f"cs_{secrets.token_hex(20)}")
        return {"consumer_key": key.token, "consumer_secret": key.secret}

    def authenticate(self, request: Request) -> None:
        key, secret = request.query_params.get("consumer_key"), request.query_params.get(
            "consumer_secret")
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                key, _, secret = base64.b64decode(encoded).decode().partition(":")
            except ValueError:
                key = secret = None
        verdict, found = self.store.check_token(key or "")
        if verdict != "ok" or found is None or not hmac.compare_digest(found.secret or "",
                                                                        secret or ""):
            raise _wc_error(401, "woocommerce_rest_cannot_view",
                            "Sorry, you cannot list resources.")

    def router(self) -> APIRouter:
        router = APIRouter(prefix=API, dependencies=[Depends(api_gate)])
        order = "/orders/{order_id:int}"
        router.add_api_route("/orders", self.list_orders, methods=["GET"])
        router.add_api_route(order, self.get_order, methods=["GET"])
        router.add_api_route(order, self.update_order, methods=["PUT", "POST", "PATCH"])
        router.add_api_route(order + "/notes", self.list_notes, methods=["GET"])
        router.add_api_route(order + "/notes", self.add_note, methods=["POST"], status_code=201)
        router.add_api_route("/webhooks", self.list_webhooks, methods=["GET"])
        router.add_api_route("/webhooks", self.create_webhook, methods=["POST"], status_code=201)
        router.add_api_route("/webhooks/{webhook_id:int}", self.get_webhook, methods=["GET"])
        router.add_api_route("/webhooks/{webhook_id:int}", self.update_webhook,
                             methods=["PUT", "POST", "PATCH"])
        return router

    def _order(self, request: Request, order_id: int) -> dict:
        self.authenticate(request)
        order = self.store.get(order_id)
        if order is None:
            raise _wc_error(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
        return order

    def list_orders(self, request: Request) -> JSONResponse:
        from .listing import woocommerce_page

        self.authenticate(request)
        return woocommerce_page(self, request)

    def get_order(self, order_id: int, request: Request) -> dict:
        return self._order(request, order_id)

    async def update_order(self, order_id: int, request: Request) -> dict:
        self._order(request, order_id)
        body = json_body(await request.body())
        if not isinstance(body, dict):
            raise _wc_error(400, "rest_invalid_json", "Invalid JSON body passed.")
        entries = body.get("meta_data", [])
        if not isinstance(entries, list) or not all(isinstance(m, dict) and "key" in m
                                                    for m in entries):
            raise _wc_error(400, "rest_invalid_param", "Invalid parameter(s): meta_data")

        def mutate(order: dict) -> bool:
            before = copy.deepcopy(order)
            for entry in entries:
                # An entry with an id updates that entry; a key already present has its (first)
                # value replaced; a new key is added: what WC_Data::update_meta_data does.
                same = next((m for m in order["meta_data"]
                             if (m["id"] == entry["id"] if entry.get("id") else
                                 m["key"] == entry["key"])), None)
                if same is None:
                    order["meta_data"].append(self._meta(entry))
                else:
                    same.update(key=entry["key"], value=entry.get("value"))
            for name in ("status", "customer_note"):
                if name in body:
                    order[name] = body[name]
            return order != before

        return self.sim.touch_order(order_id, mutate, emit="order.updated")

    def list_notes(self, order_id: int, request: Request) -> list[dict]:
        self._order(request, order_id)
        with self.store.lock:
            return list(reversed(copy.deepcopy(self.notes.get(order_id, []))))

    async def add_note(self, order_id: int, request: Request) -> dict:
        self._order(request, order_id)
        body = json_body(await request.body())
        if not isinstance(body, dict) or not str(body.get("note") or "").strip():
            raise SimError(400, {"code": "rest_missing_callback_param",
                                 "message": "Missing parameter(s): note",
                                 "data": {"status": 400, "params": ["note"]}})
        moment = self.time(self.store.clock.now())
        note = {"id": self.store.next_id("note", 501), "author": "WooCommerce",
                "date_created": moment, "date_created_gmt": moment, "note": body["note"],
                "customer_note": bool(body.get("customer_note", False)), "added_by_user": False}
        with self.store.lock:  # a note is a comment on the order: the order itself is unchanged
            self.notes.setdefault(order_id, []).append(note)
        return note

    # -------------------------------------------------------------- webhooks API

    def _webhook_view(self, sub: Subscription) -> dict:
        created = self.time(sub.created_at)
        resource, _, event = sub.topics[0].partition(".")
        return {"id": sub.id, "name": sub.name or f"Webhook {sub.id}", "status": sub.status,
                "topic": sub.topics[0], "topics": list(sub.topics), "resource": resource,
                "event": event, "delivery_url": sub.address, "failure_count": sub.failure_count,
                "date_created": created, "date_created_gmt": created,
                "date_modified": created, "date_modified_gmt": created}

    def _webhook(self, request: Request, webhook_id: int) -> Subscription:
        self.authenticate(request)
        sub = self.store.subscriptions.get(webhook_id)
        if sub is None:
            raise _wc_error(404, "woocommerce_rest_webhook_invalid_id", "Invalid ID.")
        return sub

    def list_webhooks(self, request: Request) -> list[dict]:
        self.authenticate(request)
        return [self._webhook_view(s) for s in self.store.subscriptions.values()]

    def get_webhook(self, webhook_id: int, request: Request) -> dict:
        return self._webhook_view(self._webhook(request, webhook_id))

    async def create_webhook(self, request: Request) -> dict:
        self.authenticate(request)
        body = json_body(await request.body())
        if not isinstance(body, dict) or not body.get("delivery_url") or not body.get("topic"):
            raise SimError(400, {"code": "rest_missing_callback_param",
                                 "message": "Missing parameter(s): topic, delivery_url",
                                 "data": {"status": 400, "params": ["topic", "delivery_url"]}})
        try:
            sub = self.sim.subscribe(body["delivery_url"], body.get("secret"), [body["topic"]],
                                     body.get("name", ""))
        except ValueError as exc:
            raise _wc_error(400, "rest_invalid_param", str(exc)) from None
        return self._webhook_view(sub)

    async def update_webhook(self, webhook_id: int, request: Request) -> dict:
        sub = self._webhook(request, webhook_id)
        body = json_body(await request.body())
        status = body.get("status") if isinstance(body, dict) else None
        if status is not None:
            if status not in ("active", "paused", "disabled"):
                raise _wc_error(400, "rest_invalid_param", "Invalid parameter(s): status")
            with self.store.lock:
                sub.status = status
                if status == "active":
                    sub.failure_count = 0
        return self._webhook_view(sub)
