"""Hypothesis: random orders, priced and totalled the way each platform does (tax per line, rounded;
discounts on lines or on the order; shipping and fees), either map to a body whose engine total is
within the rounding rule of the platform's total, or park with the exact difference. A correctly
totalled order never parks; a tax-inclusive one matches to the cent; nothing is ever a float.
"""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from stalela.connectors.mapping import MappingOptions, map_order
from stalela.kit.money import money_str
from tests.connectors.mapping.support import BASE_OPTIONS, OUTLETS, assert_no_float, engine_compute

FAST = settings(max_examples=150, deadline=None)
CENT = Decimal("0.01")
RATES = {"CD": ["0.16", "0.08", "0"], "AR": ["0.21", "0.105", "0.27", "0.05", "0.025", "0"]}
CURRENCY = {"CD": "CDF", "AR": "ARS"}
OPTIONS = {j: MappingOptions.from_json(BASE_OPTIONS[j]) for j in BASE_OPTIONS}
# An identified buyer, so that an Argentine B receipt of any size is valid (no consumidor final limit).
DNI = "30123456"


def r(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def s(value: Decimal) -> str:
    return format(r(value), "f")


def tax_of(amount: Decimal, rate: Decimal, included: bool) -> Decimal:
    return r(amount * rate / (1 + rate)) if included else r(amount * rate)


cents = st.integers(min_value=0, max_value=5_000_000).map(lambda c: Decimal(c) / 100)
quantities = st.integers(min_value=1, max_value=25)
# Most orders exact; some off by a few cents (at the edge of the rule); some off by a lot.
deltas = st.one_of(st.just(0), st.just(0), st.integers(-5, 5), st.integers(-100_000, 100_000)).map(
    lambda c: Decimal(c) / 100)


def _check(platform: str, jurisdiction: str, order: dict[str, Any], delta: Decimal, included: bool,
           total_field: str) -> None:
    """Map the order as the platform totalled it, then with its total moved by ``delta``."""
    exact = map_order(platform, order, jurisdiction=jurisdiction, outlet_id=OUTLETS[jurisdiction],
                      options=OPTIONS[jurisdiction])
    assert exact.outcome == "mapped", exact  # a correctly totalled order never parks
    assert_no_float(exact.as_json())
    ours, allowed = Decimal(exact.total), Decimal(exact.allowed)
    assert abs(Decimal(exact.difference)) <= allowed
    if included and "exchange" not in exact.body:
        assert exact.difference == "0.00"
    computed = engine_compute(exact.body, jurisdiction, OPTIONS[jurisdiction])
    assert (computed.exchange.total_foreign if computed.exchange else computed.totals.total) == ours

    moved = {**order, total_field: _moved(order[total_field], delta)}
    result = map_order(platform, moved, jurisdiction=jurisdiction, outlet_id=OUTLETS[jurisdiction],
                       options=OPTIONS[jurisdiction])
    platform_total = Decimal(str(moved[total_field]))
    event(f"moved total: {result.outcome}; allowed {allowed}")
    if abs(ours - platform_total) <= allowed:
        assert result.outcome == "mapped" and result.body == exact.body
    else:
        assert result.outcome == "parked" and result.reason == "totals_mismatch"
        assert result.difference == money_str(ours - platform_total)
        assert (result.total, result.platform_total) == (exact.total, money_str(platform_total))


def _moved(value: Any, delta: Decimal) -> Any:
    moved = Decimal(str(value)) + delta
    return moved if isinstance(value, Decimal) else s(moved)


# ----------------------------------------------------------------------------------- Shopify


@st.composite
def shopify_orders(draw, jurisdiction: str) -> tuple[dict[str, Any], bool]:
    included = draw(st.booleans())
    items, net_total, tax_total = [], Decimal(0), Decimal(0)
    for k in range(draw(st.integers(1, 8))):
        q, price, rate = draw(quantities), draw(cents), Decimal(draw(st.sampled_from(RATES[jurisdiction])))
        discount = r(q * price * Decimal(draw(st.integers(0, 100))) / 100)
        net = r(q * price) - discount
        tax = tax_of(net, rate, included) if rate else Decimal(0)
        items.append({"id": k, "title": f"Item {k}", "sku": f"SKU{k}", "quantity": q, "price": s(price),
                      "total_discount": s(discount), "discount_allocations": [{"amount": s(discount)}] if discount else [],
                      "taxable": bool(rate), "tax_lines": [{"title": "VAT", "rate": rate, "price": s(tax)}] if rate else []})
        net_total, tax_total = net_total + net, tax_total + tax
    shipping = []
    for _ in range(draw(st.integers(0, 2))):
        price, rate = draw(cents), Decimal(draw(st.sampled_from(RATES[jurisdiction][:1])))
        discounted = r(price * Decimal(draw(st.integers(0, 100))) / 100)
        tax = tax_of(discounted, rate, included)
        shipping.append({"title": "Shipping", "price": s(price), "discounted_price": s(discounted),
                         "tax_lines": [{"title": "VAT", "rate": rate, "price": s(tax)}]})
        net_total, tax_total = net_total + discounted, tax_total + tax
    total = net_total + (Decimal(0) if included else tax_total)
    # A Congolese shop pricing in dollars: invoiced in CDF at the connection's rate, compared in USD.
    currency = draw(st.sampled_from(["CDF", "USD"])) if jurisdiction == "CD" else CURRENCY[jurisdiction]
    order = {"id": 1, "currency": currency, "taxes_included": included, "financial_status": "paid",
             "updated_at": "2026-11-20T10:00:00Z", "total_price": s(total), "total_tax": s(tax_total),
             "line_items": items, "shipping_lines": shipping,
             "note_attributes": [{"name": "tax_id", "value": DNI}] if jurisdiction == "AR" else []}
    # An order that charged no tax at all is read as tax-inclusive (nothing was added to the prices).
    return order, included or tax_total == 0


@FAST
@given(st.sampled_from(["CD", "AR"]).flatmap(lambda j: st.tuples(st.just(j), shopify_orders(j))), deltas)
def test_shopify_orders_map_within_the_rule_or_park_with_the_difference(case, delta):
    jurisdiction, (order, included) = case
    _check("shopify", jurisdiction, order, delta, included, "total_price")


# ------------------------------------------------------------------------------- WooCommerce


def _woo_line(amount_entered: Decimal, discount_entered: Decimal, rate: Decimal | None, included: bool) -> dict[str, Any]:
    """A line as WooCommerce stores it: amounts before tax, the tax beside them, rounded per line."""
    def split(entered: Decimal) -> tuple[Decimal, Decimal]:
        if rate is None:
            return entered, Decimal(0)
        tax = tax_of(entered, rate, included)
        return (entered - tax, tax) if included else (entered, tax)
    sub, sub_tax = split(amount_entered)
    tot, tot_tax = split(amount_entered - discount_entered)
    return {"subtotal": s(sub), "subtotal_tax": s(sub_tax), "total": s(tot), "total_tax": s(tot_tax),
            "taxes": [{"id": 1, "total": s(tot_tax), "subtotal": s(sub_tax)}] if rate is not None else []}


@st.composite
def woo_orders(draw, jurisdiction: str) -> tuple[dict[str, Any], bool]:
    included = draw(st.booleans())
    taxed = draw(st.booleans())
    rate = Decimal(draw(st.sampled_from(RATES[jurisdiction][:-1]))) if taxed else None
    lines = []
    for k in range(draw(st.integers(1, 6))):
        q, price = draw(quantities), draw(cents)
        entered = r(q * price)
        discount = r(entered * Decimal(draw(st.integers(0, 100))) / 100)
        lines.append({"id": k, "name": f"Item {k}", "sku": f"SKU{k}", "quantity": q,
                      **_woo_line(entered, discount, rate, included)})
    shipping = [{"method_title": "Flat rate", **_woo_line(draw(cents), Decimal(0), rate, included)}
                for _ in range(draw(st.integers(0, 1)))]
    fees = [{"name": "Handling", **_woo_line(draw(cents), Decimal(0), rate, included)}
            for _ in range(draw(st.integers(0, 1)))]
    parts = [*lines, *shipping, *fees]
    total = sum((Decimal(p["total"]) + Decimal(p["total_tax"]) for p in parts), Decimal(0))
    total_tax = sum((Decimal(p["total_tax"]) for p in parts), Decimal(0))
    order = {"id": 9, "status": "processing", "currency": CURRENCY[jurisdiction], "prices_include_tax": included,
             "date_modified_gmt": "2026-11-20T08:00:00", "total": s(total), "total_tax": s(total_tax),
             "line_items": lines, "shipping_lines": shipping, "fee_lines": fees, "refunds": [],
             "tax_lines": [{"rate_id": 1, "rate_percent": rate * 100}] if rate is not None else [],
             "meta_data": [{"key": "vat_number", "value": DNI}] if jurisdiction == "AR" else []}
    return order, False  # every taxed WooCommerce line was rounded by WooCommerce: within the rule, not exact


@FAST
@given(st.sampled_from(["CD", "AR"]).flatmap(lambda j: st.tuples(st.just(j), woo_orders(j))), deltas)
def test_woocommerce_orders_map_within_the_rule_or_park_with_the_difference(case, delta):
    jurisdiction, (order, included) = case
    _check("woocommerce", jurisdiction, order, delta, included, "total")


# ----------------------------------------------------------------- Tienda Nube, Mercado Libre


@st.composite
def tiendanube_orders(draw) -> dict[str, Any]:
    products = [{"name": f"P{k}", "sku": f"S{k}", "quantity": str(draw(quantities)), "price": s(draw(cents))}
                for k in range(draw(st.integers(1, 6)))]
    subtotal = sum((int(p["quantity"]) * Decimal(p["price"]) for p in products), Decimal(0))
    discount = r(subtotal * Decimal(draw(st.integers(0, 100))) / 100)
    shipping = draw(cents)
    return {"id": 5, "currency": "ARS", "payment_status": "paid", "status": "open", "updated_at": "2026-11-20T10:00:00+0000",
            "contact_identification": DNI, "products": products, "subtotal": s(subtotal), "discount": s(discount),
            "shipping_cost_customer": s(shipping), "total": s(subtotal - discount + shipping)}


@FAST
@given(tiendanube_orders(), deltas)
def test_tiendanube_orders_share_the_discount_to_the_cent(order, delta):
    _check("tiendanube", "AR", order, delta, True, "total")


@st.composite
def mercadolibre_orders(draw) -> dict[str, Any]:
    items, total = [], Decimal(0)
    for k in range(draw(st.integers(1, 5))):
        q, full = draw(quantities), draw(cents)
        unit = r(full * Decimal(draw(st.integers(0, 100))) / 100)
        # JSON numbers, as parse_float=Decimal gives them (8500 is an int, 2300.5 a Decimal)
        items.append({"item": {"id": f"MLA{k}", "title": f"Item {k}"}, "quantity": q,
                      "unit_price": unit.normalize() if unit != unit.to_integral_value() else int(unit),
                      "full_unit_price": full})
        total += q * unit
    return {"id": 7, "status": "paid", "pack_id": None, "currency_id": "ARS", "last_updated": "2026-11-20T10:00:00.000-04:00",
            "total_amount": r(total), "order_items": items, "payments": [{"status": "approved", "transaction_amount": r(total)}]}


@FAST
@given(mercadolibre_orders(), deltas)
def test_mercadolibre_orders_map_exactly(order, delta):
    _check("mercadolibre", "AR", {**order}, delta, True, "total_amount")
