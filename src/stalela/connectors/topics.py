"""What a delivery says, per platform: its topic, the order it is about, its deduplication key, and whether
its body is a whole order we may use (a signed, full order: Shopify, WooCommerce) or only a pointer
(Mercado Libre, Tienda Nube) that makes us read the order back.

Deduplication keys (docs/connectors.md, "Exactly one invoice per order"): Shopify's ``X-Shopify-Event-Id``
(the same on every retry of one event); WooCommerce's delivery id is new per delivery, so (order id,
``date_modified_gmt``); Tienda Nube (order id, event) collapses its duplicates; Mercado Libre's
notification ``_id`` or (resource, sent). A collapsed duplicate is only an optimisation: the order's row
lock and the seal's Idempotency-Key are what make one invoice per order.
"""
from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from stalela.connectors.clients.base import loads

# Topics that can change what an order should become; anything else is acknowledged and dropped.
ORDER_TOPICS = {
    "shopify": {"orders/create", "orders/paid", "orders/updated", "orders/cancelled", "orders/edited",
                "refunds/create"},
    "mercadolibre": {"orders_v2", "orders"},
    "tiendanube": {"order/created", "order/paid", "order/updated", "order/cancelled", "order/voided",
                   "order/edited", "order/fulfilled", "order/packed"},
    "woocommerce": {"order.created", "order.updated", "order.restored", "order.paid"},
}


@dataclass(frozen=True)
class Delivery:
    topic: str
    order_ref: str | None  # None: not about an order (a ping, another topic)
    dedup_key: str
    order: dict[str, Any] | None  # the whole order, when the body is one (signed platforms only)


class Unreadable(ValueError):
    """The body is not what the platform sends (not JSON, no order id): acknowledged, stored, not processed."""


def is_ping(platform: str, headers: dict[str, str], body: bytes) -> bool:
    """WooCommerce's unsigned ``webhook_id=<n>`` form post when a webhook is saved."""
    if platform != "woocommerce" or headers.get("x-wc-webhook-signature"):
        return False
    fields = parse_qs(body.decode("latin-1"), keep_blank_values=True)
    return "webhook_id" in fields and len(fields) == 1


def read(platform: str, headers: dict[str, str], body: bytes) -> Delivery:
    digest = hashlib.sha256(body).hexdigest()[:32]
    try:
        data = loads(body)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
        raise Unreadable("the body is not JSON") from None
    if not isinstance(data, dict):
        raise Unreadable("the body is not a JSON object")
    if platform == "shopify":
        topic = headers.get("x-shopify-topic", "")
        ref = data.get("order_id") if topic.startswith("refunds/") else data.get("id")
        event = headers.get("x-shopify-event-id")
        return Delivery(topic, _ref(ref), f"event:{event}" if event else f"body:{digest}",
                        data if topic.startswith("orders/") else None)
    if platform == "woocommerce":
        topic = headers.get("x-wc-webhook-topic", "")
        ref = _ref(data.get("id"))
        # Two changes stamped in one second share date_modified_gmt: the body's digest tells them apart.
        return Delivery(topic, ref, f"order:{ref}:{data.get('date_modified_gmt')}:{digest[:16]}" if ref
                        else f"body:{digest}", data if ref else None)
    if platform == "tiendanube":
        # Every order/updated of one order has the same body: a key would collapse a later change (a refund)
        # into an earlier one. Tienda Nube's duplicates are left to the order's row lock instead.
        topic, ref = str(data.get("event", "")), _ref(data.get("id"))
        return Delivery(topic, ref, f"delivery:{uuid.uuid4().hex}", None)
    if platform == "mercadolibre":
        topic, resource = str(data.get("topic", "")), str(data.get("resource", ""))
        ref = _ref(resource.rsplit("/", 1)[-1]) if resource.startswith("/orders/") else None
        key = data.get("_id") or f"{resource}:{data.get('sent')}"
        return Delivery(topic, ref, f"notification:{key}", None)
    raise Unreadable(f"unknown platform {platform}")


def _ref(value: Any) -> str | None:
    text = str(value) if value is not None else ""
    return text if text and len(text) <= 64 and text.replace("-", "").isalnum() else None


def relevant(platform: str, delivery: Delivery) -> bool:
    return delivery.order_ref is not None and delivery.topic in ORDER_TOPICS[platform]
