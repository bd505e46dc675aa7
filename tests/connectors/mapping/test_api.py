"""The helpers the connector plumbing calls besides map_order (state, version, key, merge_pack), the
options, the caller's errors, and the two exact layouts (a discount shared over lines, a discounted line
split so its amount stays exact)."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

from stalela.connectors.mapping import (
    ExchangeRate,
    FloatNotAllowed,
    MappingOptions,
    map_order,
    merge_pack,
    order_key,
    order_state,
    order_version,
)
from stalela.connectors.mapping.values import allocate, split_amount
from tests.connectors.mapping.support import FIXTURES, load, order_of

D = Decimal


# ------------------------------------------------------------------------------ state, version, key


@pytest.mark.parametrize(("platform", "order", "state"), [
    ("shopify", {"financial_status": "paid"}, "paid"),
    ("shopify", {"financial_status": "authorized"}, "unpaid"),
    ("shopify", {"financial_status": "refunded"}, "refunded"),
    ("shopify", {"financial_status": "partially_refunded"}, "partially_refunded"),
    ("shopify", {"financial_status": "voided"}, "cancelled"),
    ("shopify", {"financial_status": "paid", "cancelled_at": "2026-11-20T10:00:00Z"}, "cancelled"),
    ("mercadolibre", {"status": "paid", "payments": [{"status": "approved"}]}, "paid"),
    ("mercadolibre", {"status": "payment_required", "payments": []}, "unpaid"),
    ("mercadolibre", {"status": "cancelled", "payments": [{"status": "refunded"}]}, "refunded"),
    ("mercadolibre", {"status": "paid", "payments": [{"status": "approved"}, {"status": "refunded"}]},
     "partially_refunded"),
    ("mercadolibre", {"status": "paid", "payments": [{"status": "approved", "transaction_amount_refunded": 10}]},
     "partially_refunded"),
    ("mercadolibre", {"status": "cancelled", "payments": [{"status": "rejected"}]}, "cancelled"),
    ("tiendanube", {"payment_status": "paid", "status": "open"}, "paid"),
    ("tiendanube", {"payment_status": "pending", "status": "open"}, "unpaid"),
    ("tiendanube", {"payment_status": "refunded", "status": "cancelled"}, "refunded"),
    ("tiendanube", {"payment_status": "voided", "status": "open"}, "cancelled"),
    ("tiendanube", {"payment_status": "paid", "status": "cancelled"}, "cancelled"),
    ("woocommerce", {"status": "processing", "total": "10.00", "refunds": []}, "paid"),
    ("woocommerce", {"status": "completed", "total": "10.00", "refunds": [{"total": "-4.00"}]}, "partially_refunded"),
    ("woocommerce", {"status": "completed", "total": "10.00", "refunds": [{"total": "-10.00"}]}, "refunded"),
    ("woocommerce", {"status": "on-hold", "total": "10.00"}, "unpaid"),
    ("woocommerce", {"status": "failed", "total": "10.00"}, "unpaid"),
    ("woocommerce", {"status": "cancelled", "total": "10.00"}, "cancelled"),
])
def test_order_state(platform, order, state):
    assert order_state(platform, order) == state


@pytest.mark.parametrize(("platform", "order", "version"), [
    ("shopify", {"updated_at": "2026-11-20T10:02:31-05:00"}, "2026-11-20T15:02:31.000000Z"),
    ("mercadolibre", {"last_updated": "2026-11-20T10:15:00.123-04:00"}, "2026-11-20T14:15:00.123000Z"),
    ("mercadolibre", {"date_closed": "2026-11-20T10:15:00.000-04:00"}, "2026-11-20T14:15:00.000000Z"),
    ("tiendanube", {"updated_at": "2026-11-20T13:20:45+0000"}, "2026-11-20T13:20:45.000000Z"),
    ("woocommerce", {"date_modified_gmt": "2026-11-20T08:01:10"}, "2026-11-20T08:01:10.000000Z"),
])
def test_order_version_is_utc_with_a_fixed_width(platform, order, version):
    assert order_version(platform, order) == version


def test_versions_compare_as_strings_across_offsets():
    earlier = order_version("shopify", {"updated_at": "2026-11-20T10:59:59.5-05:00"})  # 15:59:59.5 UTC
    later = order_version("shopify", {"updated_at": "2026-11-20T17:00:00+01:00"})  # 16:00:00 UTC
    assert earlier < later


def test_an_unreadable_version_is_a_value_error():
    with pytest.raises(ValueError, match="updated_at"):
        order_version("shopify", {"updated_at": "yesterday"})


def test_order_key_is_the_pack_on_mercado_libre():
    assert order_key("mercadolibre", {"id": 1, "pack_id": 2000000055501}) == "2000000055501"
    assert order_key("mercadolibre", {"id": 1, "pack_id": None}) == "1"
    assert order_key("tiendanube", {"id": 880001, "number": 101}) == "880001"
    assert order_key("shopify", {"id": 5001, "name": "#1001"}) == "5001"


def test_merge_pack_makes_one_order_of_the_pack():
    orders = load(FIXTURES / "mercadolibre" / "pack.order.json")
    merged = merge_pack(orders)
    assert merged["id"] == merged["pack_id"] == 2000000055501
    assert [i["item"]["title"] for i in merged["order_items"]] == ["Taza cerámica", "Plato playo"]
    assert merged["total_amount"] == D("18001.00")
    assert merged["last_updated"] == "2026-11-20T14:16:30.000000Z"  # the later order's
    assert order_state("mercadolibre", merged) == "paid"
    assert merge_pack(list(reversed(orders))) == merged


def test_merge_pack_leaves_out_an_order_cancelled_before_payment():
    orders = load(FIXTURES / "mercadolibre" / "pack.order.json")
    dropped = {**orders[1], "status": "cancelled", "payments": [{"status": "rejected"}]}
    merged = merge_pack([orders[0], dropped])
    assert merged["pack_orders"] == [orders[0]["id"]] and merged["total_amount"] == D("7000")
    with pytest.raises(ValueError, match="packs"):
        merge_pack([orders[0], {**orders[1], "pack_id": 1}])


# ------------------------------------------------------------------------------ the caller's errors


def test_a_float_amount_is_refused_with_a_clear_error():
    order = json.loads((FIXTURES / "mercadolibre" / "paid_simple.order.json").read_text())  # floats
    with pytest.raises(FloatNotAllowed, match="parse_float=Decimal"):
        map_order("mercadolibre", order, jurisdiction="AR", outlet_id="o",
                  options=MappingOptions(issuer_vat_condition="responsable_inscripto"))


def test_unknown_platform_jurisdiction_and_missing_issuer_condition_are_value_errors():
    order = order_of("mercadolibre", "paid_simple")
    with pytest.raises(ValueError, match="platform"):
        map_order("amazon", order, jurisdiction="AR", outlet_id="o", options=MappingOptions())
    with pytest.raises(ValueError, match="jurisdiction"):
        map_order("mercadolibre", order, jurisdiction="BJ", outlet_id="o", options=MappingOptions())
    with pytest.raises(ValueError, match="issuer_vat_condition"):
        map_order("mercadolibre", order, jurisdiction="AR", outlet_id="o", options=MappingOptions())


def test_the_same_order_maps_to_the_same_body():
    order = order_of("woocommerce", "exclusive")
    first = map_order("woocommerce", order, jurisdiction="CD", outlet_id="o", options=MappingOptions())
    again = map_order("woocommerce", json.loads(json.dumps(order, default=str)), jurisdiction="CD", outlet_id="o",
                      options=MappingOptions())
    assert first == again and first.outcome == "mapped"


def test_options_round_trip_through_json():
    options = MappingOptions(exchange_rates={"USD": ExchangeRate(rate=D("2850.5"), date="2026-11-20")},
                             currencies=frozenset({"CDF", "USD"}), tolerance=D("0.02"), payment_method="MOBILEMONEY")
    assert MappingOptions.from_json(json.loads(json.dumps(options.as_json()))) == options
    with pytest.raises(ValueError):
        MappingOptions(tolerance=D("-0.01"))
    with pytest.raises(FloatNotAllowed):
        MappingOptions(tolerance=0.01)  # type: ignore[arg-type]


def test_a_currency_the_connection_does_not_take_parks():
    order = order_of("shopify", "paid_inclusive_usd")
    result = map_order("shopify", order, jurisdiction="CD", outlet_id="o", options=MappingOptions())
    assert (result.outcome, result.reason, result.detail) == (
        "parked", "unsupported_currency", "the order is in USD; the connection invoices CDF")
    accepted = MappingOptions(currencies=frozenset({"CDF", "USD"}))  # but no rate to convert with
    result = map_order("shopify", order, jurisdiction="CD", outlet_id="o", options=accepted)
    assert result.reason == "unsupported_currency" and "no exchange rate" in result.detail
    only_cdf = MappingOptions(currencies=frozenset({"CDF"}),
                              exchange_rates={"USD": ExchangeRate(rate=D("2850.5"), date="2026-11-20")})
    assert map_order("shopify", order, jurisdiction="CD", outlet_id="o", options=only_cdf).reason == "unsupported_currency"


# ------------------------------------------------------------------------------ exact layouts


@pytest.mark.parametrize(("total", "weights", "shares"), [
    ("7777.77", ["38970.00", "39990.00", "3000.00"], ["3698.14", "3794.94", "284.69"]),
    ("0.02", ["1.00", "1.00", "1.00"], ["0.01", "0.01", "0.00"]),  # ties go to the earlier line
    ("1.00", ["0.00", "0.00"], ["0.50", "0.50"]),
    ("-0.03", ["2.00", "1.00"], ["-0.02", "-0.01"]),
    ("0.00", ["5.00"], ["0.00"]),
])
def test_allocate_shares_to_the_cent(total, weights, shares):
    got = allocate(D(total), [D(w) for w in weights])
    assert [str(g) for g in got] == shares and sum(got) == D(total)


@pytest.mark.parametrize(("quantity", "amount", "lines"), [
    ("3", "89000.00", [("1", "29666.66"), ("2", "29666.67")]),
    ("4", "100.00", [("4", "25.00")]),
    ("12", "107999.46", [("6", "8999.95"), ("6", "8999.96")]),
    ("2.5", "10.01", [("1", "10.01")]),
    ("5", "0.00", [("5", "0.00")]),
])
def test_split_amount_keeps_the_amount_exact(quantity, amount, lines):
    got = split_amount(D(quantity), D(amount))
    assert [(str(q.normalize()), str(p)) for q, p in got] == lines
    assert sum((q * p for q, p in got), D(0)) == D(amount)


# ------------------------------------------------------------------------------ orders that park


def _map(platform, order, jurisdiction="CD", **options):
    settings = {"issuer_vat_condition": "responsable_inscripto"} if jurisdiction == "AR" else {}
    return map_order(platform, order, jurisdiction=jurisdiction, outlet_id="o",
                     options=MappingOptions(**{**settings, **options}))


def test_orders_that_cannot_be_read_park_with_their_reason():
    shopify = order_of("shopify", "paid_exclusive")
    no_lines = {**shopify, "line_items": [], "shipping_lines": []}
    assert _map("shopify", no_lines).reason == "empty_order"
    long_id = {**shopify, "note_attributes": [{"name": "tax_id", "value": "9" * 65}]}
    assert _map("shopify", long_id).reason == "invalid_buyer_id"
    three_decimals = {**shopify, "total_price": "200581.155"}
    assert (_map("shopify", three_decimals).reason, _map("shopify", {**shopify, "total_price": None}).reason) == (
        "invalid_order", "invalid_order")
    # Two tax lines on one item add up to one rate: 8 % + 8 % is the DRC's 16 %.
    split_tax = {**shopify, "line_items": [{**item, "tax_lines": [{"rate": D("0.08")}, {"rate": D("0.08")}]}
                                           for item in shopify["line_items"][:2]],
                 "shipping_lines": [], "total_price": str(D("135000.00") + D("25001.00") + D("25600.16"))}
    assert _map("shopify", split_tax).outcome == "mapped"

    woo = order_of("woocommerce", "exclusive")
    unknown_rate = {**woo, "tax_lines": [{**woo["tax_lines"][0], "rate_id": 99}]}
    result = _map("woocommerce", unknown_rate)
    assert result.reason == "invalid_order" and "not in the order's tax_lines" in result.detail

    tn = order_of("tiendanube", "paid_simple")
    too_much = {**tn, "discount": "99999.00", "total": "0.00"}
    assert _map("tiendanube", too_much, "AR").reason == "invalid_order"


def test_an_unset_issuer_condition_of_the_buyer_follows_the_cuit():
    """No taxpayer type stated: a CUIT is the connection's cuit_vat_condition (A for an RI buyer), and
    a connection may say its CUIT buyers are consumidores finales instead (B)."""
    order = order_of("tiendanube", "cuit")
    assert _map("tiendanube", order, "AR").body["type"] == "1"
    as_consumer = _map("tiendanube", order, "AR", cuit_vat_condition="consumidor_final")
    assert as_consumer.body["type"] == "6" and as_consumer.body["buyer"]["vat_condition"] == "consumidor_final"
