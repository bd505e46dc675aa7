"""Shopify (Admin API 2025-01): REST orders, GraphQL ``metafieldsSet``, full-order webhooks.

Webhooks carry the whole order, signed ``X-Shopify-Hmac-Sha256`` = base64(HMAC-SHA256(app secret,
raw body)); a failed delivery (non-2xx, or no answer within 5 s) is retried 8 times over 4 hours,
exponentially, with the original payload and the same ``X-Shopify-Event-Id``. A delivery that
exhausts its retries removes the subscription (``Options.delete_after_exhausted``), as Shopify
does to subscriptions created through the Admin API.
"""
from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import re
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from stalela.kit.money import multiply_money, round_money_ratio

from .base import Change, Platform
from .common import (
    SimError,
    api_gate,
    dec,
    fields,
    fill,
    iso_offset,
    json_body,
    json_bytes,
    money,
    total,
)
from .state import Subscription

if TYPE_CHECKING:
    from .deliveries import Job

VERSION = "2025-01"
API = f"/admin/api/{VERSION}"
SHOP_DOMAIN = "stalela-sim.myshopify.com"
CLIENT_ID = "stalela-sim-shopify-app"
SCOPE = "read_orders,write_orders"
UNAUTHORIZED = "[API] Invalid API key or access token (unrecognized login or wrong password)"
ORDER_GID = re.compile(r"^gid://shopify/Order/(\d+)$")
DEFAULT_TAX = [{"title": "IVA 21%", "rate": 0.21}]
MAX_METAFIELDS = 25
DEFAULTS = {
    "email": "ana.garcia@example.com", "currency": "USD", "taxes_included": False,
    "financial_status": "pending", "closed_at": None, "cancelled_at": None, "refunds": [],
    "note_attributes": [], "metafields": [],
    "billing_address": {"name": "Ana García", "company": None, "address1": "Av. Corrientes 1234",
                        "city": "Buenos Aires", "zip": "C1043", "country_code": "AR"},
}


def _exponential(total_s: float, retries: int) -> tuple[float, ...]:
    """``retries`` delays doubling each time and summing to ``total_s``."""
    first = total_s / (2 ** retries - 1)
    return tuple(first * 2 ** i for i in range(retries))


def _rate_out(rate: Any) -> Any:
    return rate if isinstance(rate, (int, float)) else float(dec(rate))


def _tax_line(raw: dict, base: Decimal, included: bool) -> dict:
    rate = dec(raw["rate"])
    if "price" in raw:
        price = money(raw["price"])
    elif included:  # the tax inside a tax-inclusive amount: base * rate / (1 + rate)
        price = str(round_money_ratio(base * rate, 1 + rate))
    else:
        price = str(multiply_money(base, rate))
    return {**raw, "title": raw.get("title", "Tax"), "rate": _rate_out(raw["rate"]), "price": price}


def _aggregate_taxes(groups: list[list[dict]]) -> list[dict]:
    sums: dict[tuple[str, Any], Decimal] = defaultdict(Decimal)
    for tax_lines in groups:
        for t in tax_lines:
            sums[(t["title"], t["rate"])] += dec(t["price"])
    return [{"title": title, "rate": rate, "price": money(amount)}
            for (title, rate), amount in sums.items()]


class Shopify(Platform):
    name = "shopify"
    full_body = True
    topics = ("orders/create", "orders/paid", "orders/updated", "orders/cancelled",
              "refunds/create")
    retry_delays_s = _exponential(4 * 3600, 8)  # 56 s, 113 s, ... 2 h: 4 h in all
    timeout_s = 5.0
    connect_timeout_s = 1.0
    default_port = 8771
    first_order_id = 5_000_000_001
    utc_offset = "-03:00"  # the shop's zone: times are local with an offset, like Shopify's
    computed = frozenset({
        "total_price", "subtotal_price", "total_tax", "total_discounts", "total_line_items_price",
        "current_total_price", "current_subtotal_price", "current_total_tax", "tax_lines"})

    def time(self, moment: datetime) -> str:
        return iso_offset(moment, self.utc_offset)

    # -------------------------------------------------------------- orders

    def build(self, partial: dict, now: datetime) -> dict:
        o = self.new_order(partial)
        o.setdefault("order_number", self.store.next_id("order_number", 1001))
        o.setdefault("name", f"#{o['order_number']}")
        o["admin_graphql_api_id"] = f"gid://shopify/Order/{o['id']}"
        fill(o, DEFAULTS)
        o.setdefault("presentment_currency", o["currency"])
        for key in ("created_at", "updated_at", "processed_at"):
            o.setdefault(key, self.time(now))
        included = bool(o["taxes_included"])
        raw_lines = o.get("line_items") or [{"title": "Remera", "price": "100.00", "quantity": 1}]
        o["line_items"] = [self._line(raw, included) for raw in raw_lines]
        o["shipping_lines"] = [self._shipping(raw, included) for raw in o.get("shipping_lines", [])]
        o.setdefault("customer", {"id": 7_000_000_001, "first_name": "Ana", "last_name": "García",
                                  "email": o["email"]})
        self._totals(o, included)
        return o

    def _line(self, raw: dict, included: bool) -> dict:
        line = dict(raw)
        line.setdefault("id", self.store.next_id("line", 11_000_000_001))
        line.setdefault("title", "Producto")
        line.setdefault("sku", f"SKU-{line['id']}")
        line.setdefault("variant_id", None)
        line["quantity"] = int(line.get("quantity", 1))
        line["price"] = money(line.get("price", "100.00"))
        line["discount_allocations"] = [{**a, "amount": money(a["amount"])}
                                        for a in line.get("discount_allocations", [])]
        discount = total([a["amount"] for a in line["discount_allocations"]])
        line["total_discount"] = money(line.get("total_discount", discount))
        line.setdefault("taxable", True)
        base = dec(line["price"]) * line["quantity"] - discount
        raw_taxes = line.get("tax_lines", DEFAULT_TAX) if line["taxable"] else []
        line["tax_lines"] = [_tax_line(t, base, included) for t in raw_taxes]
        return line

    def _shipping(self, raw: dict, included: bool) -> dict:
        line = dict(raw)
        line.setdefault("id", self.store.next_id("shipping_line", 12_000_000_001))
        line.setdefault("title", "Envío")
        line["price"] = money(line.get("price", "0.00"))
        line["discounted_price"] = money(line.get("discounted_price", line["price"]))
        line["tax_lines"] = [_tax_line(t, dec(line["discounted_price"]), included)
                             for t in line.get("tax_lines", [])]
        return line

    def _totals(self, o: dict, included: bool) -> None:
        lines, shipping = o["line_items"], o["shipping_lines"]
        gross = total([dec(l["price"]) * l["quantity"] for l in lines])
        discounts = total([l["total_discount"] for l in lines])
        tax = total([t["price"] for x in lines + shipping for t in x["tax_lines"]])
        ship = total([s["discounted_price"] for s in shipping])
        subtotal = gross - discounts
        grand = subtotal + ship + (0 if included else tax)
        refunded = total([t["amount"] for r in o["refunds"] for t in r.get("transactions", [])
                          if t.get("kind") == "refund"])
        o.setdefault("total_line_items_price", money(gross))
        o.setdefault("total_discounts", money(discounts))
        o.setdefault("subtotal_price", money(subtotal))
        o.setdefault("total_tax", money(tax))
        o.setdefault("total_price", money(grand))
        o.setdefault("tax_lines", _aggregate_taxes([x["tax_lines"] for x in lines + shipping]))
        fully = refunded >= dec(o["total_price"]) and refunded > 0
        o.setdefault("current_total_price", money(dec(o["total_price"]) - refunded))
        o.setdefault("current_subtotal_price", money(0 if fully else subtotal))
        o.setdefault("current_total_tax", money(0 if fully else tax))

    def created(self, order: dict) -> Change:
        change = Change().add("orders/create")
        return change.add("orders/paid") if order["financial_status"] == "paid" else change

    def pay(self, order: dict, now: datetime) -> Change:
        self.require(order, "financial_status", ("pending", "authorized", "partially_paid"),
                     "payable")
        order["financial_status"] = "paid"
        return Change().add("orders/paid").add("orders/updated")

    def refund(self, order: dict, now: datetime) -> Change:
        self.require(order, "financial_status", ("paid", "partially_refunded"), "refundable")
        included = order["taxes_included"]
        amount = dec(order["current_total_price"])
        refund_id = self.store.next_id("refund", 9_000_000_001)
        items = []
        for line in order["line_items"]:
            tax = total([t["price"] for t in line["tax_lines"]])
            gross = dec(line["price"]) * line["quantity"] - dec(line["total_discount"])
            items.append({"id": self.store.next_id("refund_line", 13_000_000_001),
                          "line_item_id": line["id"], "quantity": line["quantity"],
                          "restock_type": "no_restock",
                          "subtotal": money(gross - tax if included else gross),
                          "total_tax": money(tax), "line_item": copy.deepcopy(line)})
        refund = {"id": refund_id, "order_id": order["id"],
                  "admin_graphql_api_id": f"gid://shopify/Refund/{refund_id}",
                  "created_at": self.time(now), "processed_at": self.time(now),
                  "note": "Full refund", "restock": False, "refund_line_items": items,
                  "order_adjustments": [],
                  "transactions": [{"id": self.store.next_id("transaction", 14_000_000_001),
                                    "order_id": order["id"], "kind": "refund",
                                    "status": "success", "amount": money(amount),
                                    "currency": order["currency"], "gateway": "manual"}]}
        order["refunds"].append(refund)
        order["financial_status"] = "refunded"
        for key in ("current_total_price", "current_subtotal_price", "current_total_tax"):
            order.pop(key, None)
        self._totals(order, included)
        return Change().add("refunds/create", refund).add("orders/updated")

    def patched(self, before: dict, after: dict) -> Change:
        change = Change()
        if after["financial_status"] == "paid" != before["financial_status"]:
            change.add("orders/paid")
        if after.get("cancelled_at") and not before.get("cancelled_at"):
            change.add("orders/cancelled")
        return change.add("orders/updated")

    # -------------------------------------------------------------- webhooks

    def payload(self, topic: str, order: dict) -> dict:
        body = copy.deepcopy(order)
        body.pop("metafields", None)  # the simulator's window on write-back, not in webhooks
        return body

    def request(self, job: Job, attempt: int) -> tuple[dict[str, str], bytes]:
        body = json_bytes(job.payload)
        digest = hmac.new(job.sub.secret.encode(), body, hashlib.sha256).digest()
        at = job.event.at
        return {
            "Content-Type": "application/json", "User-Agent": "Shopify-Captain-Hook",
            "X-Shopify-Topic": job.event.topic,
            "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
            "X-Shopify-Shop-Domain": SHOP_DOMAIN, "X-Shopify-API-Version": VERSION,
            "X-Shopify-Webhook-Id": job.webhook_id, "X-Shopify-Event-Id": job.event.id,
            "X-Shopify-Triggered-At": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }, body

    def exhausted(self, sub: Subscription) -> None:
        if self.sim.options.delete_after_exhausted:
            sub.status = "deleted"

    # -------------------------------------------------------------- API

    def error(self, status: int, message: str) -> SimError:
        return SimError(status, {"errors": message})

    def credentials(self, body: dict) -> dict:
        token = self.store.issue_token("shop", prefix="shpat_")
        return {"access_token": token.token, "shop_domain": SHOP_DOMAIN, "client_id": CLIENT_ID,
                "client_secret": self.sim.options.secret,
                "code": self.store.issue_code(CLIENT_ID, "shop")}

    def authenticate(self, request: Request) -> None:
        token = request.headers.get("x-shopify-access-token", "")
        if self.store.check_token(token)[0] != "ok":
            raise self.error(401, UNAUTHORIZED)

    def router(self) -> APIRouter:
        router = APIRouter(dependencies=[Depends(api_gate)])
        router.add_api_route("/admin/oauth/access_token", self.oauth_token, methods=["POST"])
        router.add_api_route(API + "/orders/{order_id:int}.json", self.get_order, methods=["GET"])
        router.add_api_route(API + "/orders.json", self.list_orders, methods=["GET"])
        router.add_api_route(API + "/graphql.json", self.graphql, methods=["POST"])
        return router

    async def oauth_token(self, request: Request) -> dict:
        self.redeem_code(await fields(request), CLIENT_ID, (
            "invalid_request", "The authorization code was not found or was already used"))
        return {"access_token": self.store.issue_token("shop", prefix="shpat_").token,
                "scope": SCOPE}

    def get_order(self, order_id: int, request: Request) -> dict:
        self.authenticate(request)
        order = self.store.get(order_id)
        if order is None:
            raise self.error(404, "Not Found")
        return {"order": order}

    def list_orders(self, request: Request) -> JSONResponse:
        from .listing import shopify_page

        self.authenticate(request)
        return shopify_page(self, request)

    async def graphql(self, request: Request) -> dict:
        self.authenticate(request)
        body = json_body(await request.body())
        if not isinstance(body, dict) or "metafieldsSet" not in str(body.get("query", "")):
            return {"errors": [{"message": "The simulator implements only the metafieldsSet "
                                           "mutation", "extensions": {"code": "UNSUPPORTED"}}]}
        inputs = (body.get("variables") or {}).get("metafields")
        if not isinstance(inputs, list) or not all(isinstance(m, dict) for m in inputs):
            return {"errors": [{"message": "Variable $metafields of type [MetafieldsSetInput!]! "
                                           "was provided invalid value",
                                "extensions": {"code": "INVALID_VARIABLE"}}]}
        if len(inputs) > MAX_METAFIELDS:
            return {"errors": [{"message": f"Exceeded the maximum metafields input limit of "
                                           f"{MAX_METAFIELDS}.",
                                "extensions": {"code": "MAX_INPUT_SIZE_EXCEEDED"}}]}
        with self.store.lock:
            errors = self._metafield_errors(inputs)
            result = [] if errors else self._set_metafields(inputs)
        return {"data": {"metafieldsSet": {"metafields": result, "userErrors": errors}},
                "extensions": {"cost": {"requestedQueryCost": 10, "actualQueryCost": 10,
                                        "throttleStatus": {"maximumAvailable": 2000.0,
                                                           "currentlyAvailable": 1990,
                                                           "restoreRate": 100.0}}}}

    def _existing(self, order: dict, namespace: str, key: str) -> dict | None:
        return next((m for m in order["metafields"]
                     if m["namespace"] == namespace and m["key"] == key), None)

    def _metafield_errors(self, inputs: list[dict]) -> list[dict]:
        errors = []

        def err(i: int, name: str, message: str, code: str) -> None:
            errors.append({"field": ["metafields", str(i), name], "message": message, "code": code})

        for i, m in enumerate(inputs):
            match = ORDER_GID.match(str(m.get("ownerId", "")))
            order = self.store.orders.get(int(match.group(1))) if match else None
            if order is None:
                err(i, "ownerId", "Owner does not exist.", "INVALID")
                continue
            for name in ("namespace", "key", "value"):
                if not str(m.get(name) or "").strip():
                    err(i, name, f"{name.capitalize()} can't be blank.", "BLANK")
            existing = self._existing(order, str(m.get("namespace")), str(m.get("key")))
            kind = m.get("type") or (existing or {}).get("type")
            value = str(m.get("value") or "")
            if not kind:
                err(i, "type", "Type can't be blank.", "BLANK")
            elif kind == "url" and not re.match(r"^https?://[^\s]+$", value):
                err(i, "value", "Value must be a valid URL with a scheme of http or https.",
                    "INVALID_VALUE")
            elif kind == "single_line_text_field" and "\n" in value:
                err(i, "value", "Value must be a single line of text.", "INVALID_VALUE")
            digest = m.get("compareDigest")
            if digest is not None and digest != (existing or {}).get("compare_digest"):
                err(i, "compareDigest", "The resource has been updated since it was loaded.",
                    "STALE_OBJECT")
        return errors

    def _set_metafields(self, inputs: list[dict]) -> list[dict]:
        """All or nothing (the caller checked every input); the same value again changes nothing."""
        now = self.time(self.store.clock.now())
        out = []
        for m in inputs:
            order_id = int(ORDER_GID.match(m["ownerId"]).group(1))
            order = self.store.orders[order_id]
            existing = self._existing(order, m["namespace"], m["key"])
            kind = m.get("type") or existing["type"]
            if existing is None:
                existing = {"id": self.store.next_id("metafield", 20_000_000_001),
                            "namespace": m["namespace"], "key": m["key"], "owner_id": order_id,
                            "owner_resource": "order", "created_at": now}
                order["metafields"].append(existing)
            if (existing.get("value"), existing.get("type")) != (m["value"], kind):
                existing.update(value=m["value"], type=kind, updated_at=now)
                existing["compare_digest"] = hashlib.sha256(
                    json.dumps([m["value"], kind, now]).encode()).hexdigest()
                self.store.save(order)  # a new version, without touching updated_at
            out.append({"id": f"gid://shopify/Metafield/{existing['id']}", "key": existing["key"],
                        "namespace": existing["namespace"], "value": existing["value"],
                        "type": existing["type"], "ownerType": "ORDER",
                        "createdAt": existing["created_at"], "updatedAt": existing["updated_at"],
                        "compareDigest": existing["compare_digest"]})
        return out
