"""What each platform's delivery says: topic, order, deduplication key, whether its body is a whole order."""
from __future__ import annotations

import json

import pytest

from stalela.connectors import topics


def test_shopify_event_id_is_the_dedup_key_and_the_body_an_order():
    body = json.dumps({"id": 450789469, "updated_at": "2026-12-01T10:00:00-05:00"}).encode()
    d = topics.read("shopify", {"x-shopify-topic": "orders/paid", "x-shopify-event-id": "evt-1"}, body)
    assert (d.topic, d.order_ref, d.dedup_key) == ("orders/paid", "450789469", "event:evt-1")
    assert d.order["id"] == 450789469
    assert topics.relevant("shopify", d)


def test_shopify_refund_points_at_its_order_and_is_not_an_order():
    body = json.dumps({"id": 509562969, "order_id": 450789469}).encode()
    d = topics.read("shopify", {"x-shopify-topic": "refunds/create", "x-shopify-event-id": "evt-2"}, body)
    assert d.order_ref == "450789469" and d.order is None


def test_woocommerce_delivery_ids_differ_so_the_key_is_the_order_version():
    body = json.dumps({"id": 727, "date_modified_gmt": "2026-11-30T10:00:00"}).encode()
    one = topics.read("woocommerce", {"x-wc-webhook-topic": "order.updated", "x-wc-webhook-delivery-id": "1"}, body)
    two = topics.read("woocommerce", {"x-wc-webhook-topic": "order.updated", "x-wc-webhook-delivery-id": "2"}, body)
    assert one.dedup_key == two.dedup_key and one.dedup_key.startswith("order:727:2026-11-30T10:00:00:")
    # Two changes in the same second (created, then paid) are two deliveries, not one.
    paid = json.dumps({"id": 727, "date_modified_gmt": "2026-11-30T10:00:00", "status": "processing"}).encode()
    assert topics.read("woocommerce", {"x-wc-webhook-topic": "order.updated"}, paid).dedup_key != one.dedup_key


def test_pointer_platforms_carry_no_order():
    tn = topics.read("tiendanube", {}, b'{"store_id":1,"event":"order/paid","id":42}')
    assert (tn.order_ref, tn.order) == ("42", None)
    again = topics.read("tiendanube", {}, b'{"store_id":1,"event":"order/paid","id":42}')
    assert again.dedup_key != tn.dedup_key  # identical pointers may be two changes: the row lock dedups
    ml = topics.read("mercadolibre", {}, json.dumps({"_id": "n1", "resource": "/orders/2000001", "topic": "orders_v2",
                                                     "user_id": 7}).encode())
    assert (ml.order_ref, ml.order, ml.dedup_key) == ("2000001", None, "notification:n1")


def test_woocommerce_ping_is_recognised_only_unsigned():
    assert topics.is_ping("woocommerce", {}, b"webhook_id=12")
    assert not topics.is_ping("woocommerce", {"x-wc-webhook-signature": "x"}, b"webhook_id=12")
    assert not topics.is_ping("shopify", {}, b"webhook_id=12")


@pytest.mark.parametrize("body", [b"not json", b"[1,2]", b'"text"'])
def test_unreadable_bodies_are_refused_cleanly(body):
    with pytest.raises(topics.Unreadable):
        topics.read("shopify", {"x-shopify-topic": "orders/paid"}, body)


def test_other_topics_and_odd_ids_are_not_relevant():
    d = topics.read("shopify", {"x-shopify-topic": "products/update"}, b'{"id": 1}')
    assert not topics.relevant("shopify", d)
    d = topics.read("tiendanube", {}, b'{"store_id":1,"event":"order/paid","id":"../../etc"}')
    assert d.order_ref is None and not topics.relevant("tiendanube", d)
