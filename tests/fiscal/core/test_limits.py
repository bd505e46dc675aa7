"""core.limits (what the offline sealer checks) agrees with the API's schema (what the cloud checks):
member by member, and on the same awkward values."""
from __future__ import annotations

import typing
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from stalela.fiscal.core import limits
from stalela.fiscal.invoices.schemas import BuyerIn, ExchangeIn, InvoiceCreate, LineIn, PaymentIn

MODELS = [(InvoiceCreate, limits.INVOICE), (LineIn, limits.LINE), (BuyerIn, limits.BUYER),
          (PaymentIn, limits.PAYMENT), (ExchangeIn, limits.EXCHANGE)]


def _describe_schema(prop: dict, defs: dict) -> tuple:
    """A property of the API's JSON schema as (kind, limits..., nullable)."""
    options = prop.get("anyOf", [prop])
    nullable = any(o.get("type") == "null" for o in options)
    options = [o for o in options if o.get("type") != "null"]
    types = sorted(o.get("type", "") for o in options)
    if types == ["number", "string"]:
        return ("amount", nullable)
    option, = options
    if "$ref" in option:
        return ("object", option["$ref"].rsplit("/", 1)[1], nullable)
    if option["type"] == "array":
        return ("array", option["items"]["$ref"].rsplit("/", 1)[1], option.get("maxItems"), nullable)
    if option["type"] == "boolean":
        return ("flag", nullable)
    if option.get("format") == "date":
        return ("day", nullable)
    assert option["type"] == "string", option
    return ("text", option.get("maxLength"), option.get("minLength", 0), option.get("pattern"), nullable)


NAMES = {id(limits.LINE): "LineIn", id(limits.BUYER): "BuyerIn", id(limits.PAYMENT): "PaymentIn",
         id(limits.EXCHANGE): "ExchangeIn"}


def _describe_limits(member: limits.Member) -> tuple:
    kind, nullable = member.kind, member.nullable
    if isinstance(kind, limits.Amount):
        return ("amount", nullable)
    if isinstance(kind, dict):
        return ("object", NAMES[id(kind)], nullable)
    if isinstance(kind, limits.Many):
        return ("array", NAMES[id(kind.item)], kind.max_items, nullable)
    if isinstance(kind, limits.Flag):
        return ("flag", nullable)
    if isinstance(kind, limits.Day):
        return ("day", nullable)
    return ("text", kind.max_length, kind.min_length, kind.pattern, nullable)


@pytest.mark.parametrize("model, shape", MODELS, ids=[m.__name__ for m, _ in MODELS])
def test_every_member_has_the_schemas_limits(model: type[BaseModel], shape: dict):
    schema = model.model_json_schema(mode="validation")
    defs = schema.get("$defs", {})
    assert set(shape) == set(schema["properties"])
    assert {n for n, m in shape.items() if m.required} == set(schema.get("required", ()))
    for name, member in shape.items():
        assert _describe_limits(member) == _describe_schema(schema["properties"][name], defs), name
    # The JSON schema does not show max_digits: the fields' annotations do.
    for name, member in shape.items():
        if isinstance(member.kind, limits.Amount):
            field = model.model_fields[name]
            meta = {k: getattr(m, k) for m in [*field.metadata, *_annotated(field.annotation)]
                    for k in ("max_digits", "allow_inf_nan") if getattr(m, k, None) is not None}
            assert meta == {"max_digits": limits.MAX_DIGITS, "allow_inf_nan": False}, (name, meta)


def _annotated(annotation) -> list:
    """The metadata of Annotated[...] anywhere inside an annotation (``Amount | None``), flattened."""
    found = list(getattr(annotation, "__metadata__", ()))
    for inner in getattr(annotation, "__metadata__", ()):
        found += list(getattr(inner, "metadata", ()))
    for arg in typing.get_args(annotation):
        found += _annotated(arg)
    return found


def _api_accepts_amount(value) -> bool:
    try:
        LineIn.model_validate({"description": "x", "quantity": value, "unit_price": "1"})
    except ValidationError:
        return False
    return True


AWKWARD_AMOUNTS = [
    "1e-9999999", "1", " 1.5 ", "1_000", "+1", "-1", "1e3", ".5", "5.", "0x10", "١٢", "1.000000000000000000000",
    "100000000000000000000", "1e17", "1e18", "1E+17", "123456789012345678", "1234567890123456789",
    "0.000000000000000001", "0.0000000000000000001", "1.5e-17", "NaN", "inf", "-Infinity", "sNaN", "-0", "0e-30",
    "0e30", "0.00", "", " ", "\t1", "1\n", "1,5", "12345678901234567.00", "1.0000000000000000000000000000001",
    "9" * 40, "1e999999999999999999", "1e-999999999999999999", "1e99999999999999999999999999", "1\x00",
    10**18, 10**17, -9 * 10**17, 0, True, False, None, [], {}, 1.5, 1e16, 1e17, 1e18, float("nan"),
    Decimal("1E-20"), Decimal("0E-20"), Decimal("12.50"),
]


@pytest.mark.parametrize("value", AWKWARD_AMOUNTS, ids=repr)
def test_an_amount_is_refused_exactly_when_the_api_refuses_it(value):
    assert (limits.amount_problem(value) is None) == _api_accepts_amount(value)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(alphabet="0123456789.eE+-_ ", max_size=30),
                 st.decimals(allow_nan=True, allow_infinity=True).map(str),
                 st.integers(min_value=-10**25, max_value=10**25)))
def test_amounts_agree_on_generated_values(value):
    assert (limits.amount_problem(value) is None) == _api_accepts_amount(value)


def _api_accepts(request: dict) -> bool:
    try:
        InvoiceCreate.model_validate(request)
    except ValidationError:
        return False
    return True


def _local_accepts(request: dict) -> bool:
    try:
        limits.check_invoice_request(request)
    except limits.RequestInvalid:
        return False
    return True


LINE = {"description": "Pain", "item_type": "BIE", "tax_group": "B", "quantity": "2", "unit_price": "100.00"}
BASE = {"outlet_id": "out_1", "type": "FV", "lines": [LINE]}
VARIANTS = [
    {}, {"lines": []}, {"lines": [LINE] * 10_000}, {"lines": [LINE] * 10_001}, {"lines": None}, {"lines": "x"},
    {"lines": [dict(LINE, description="d" * 1000)]}, {"lines": [dict(LINE, description="d" * 1001)]},
    {"lines": [dict(LINE, description=None)]}, {"lines": [dict(LINE, description=5)]},
    {"lines": [dict(LINE, quantity="1e-9999999")]}, {"lines": [dict(LINE, unit_price="NaN")]},
    {"lines": [dict(LINE, code="c" * 65)]}, {"lines": [dict(LINE, colour="red")]}, {"lines": [5]},
    {"lines": [{k: v for k, v in LINE.items() if k != "quantity"}]},
    {"reference": ""}, {"reference": "r" * 100}, {"reference": "r" * 101}, {"reference": None},
    {"reference": "a\x00b"}, {"type": "F" * 17}, {"type": None}, {"outlet_id": "o" * 65}, {"price_mode": None},
    {"original": "x" * 65}, {"payments": [{"method": "ESP", "amount": "1"}] * 100},
    {"payments": [{"method": "ESP", "amount": "1"}] * 101}, {"payments": [{"method": "ESP"}]},
    {"payments": [{"method": "ESP", "amount": "1e30"}]}, {"payments": None},
    {"buyer": {"email": "a@b"}}, {"buyer": {"email": "a@b\n"}}, {"buyer": {"email": "ab"}},
    {"buyer": {"name": "n" * 201}}, {"buyer": {"new_subject": None}}, {"buyer": {"new_subject": 1}},
    {"buyer": {"new_subject": True}}, {"buyer": {"doc_number": "1" * 21}}, {"buyer": "PM"},
    {"exchange": {"currency": "USD", "rate": "2800.5", "date": "2026-02-01"}},
    {"exchange": {"currency": "USD", "rate": "2800.5", "date": "2026-02-30"}},
    {"exchange": {"currency": "USD", "rate": "2800.5", "date": "1899-12-31"}},
    {"exchange": {"currency": "USD", "rate": "2800.5", "date": "2026-02-01\n"}},
    {"exchange": {"currency": "USD", "rate": "2800.5", "date": 20260201}},
    {"exchange": {"currency": "USD", "rate": "2800.5", "date": date(2026, 2, 1)}},
    {"exchange": {"currency": "USD", "rate": "2800.5"}}, {"service_from": "2026-01-01T00:00:00"},
    {"payment_due": "9998-12-31"}, {"payment_due": "9999-01-01"}, {"exchange_rate": "1e-19"},
    {"exchange_rate": None}, {"concept": "services"}, {"colour": "red"},
]


@pytest.mark.parametrize("change", VARIANTS, ids=lambda c: repr(c)[:60])
def test_a_request_is_refused_exactly_when_the_api_refuses_it(change):
    request = {**BASE, **change}
    assert _local_accepts(request) == _api_accepts(request)


def test_the_refusal_names_the_member():
    with pytest.raises(limits.RequestInvalid) as refused:
        limits.check_invoice_request({**BASE, "lines": [LINE, dict(LINE, quantity="1e-9999999")]})
    assert refused.value.field == "lines[1].quantity" and "18 digits" in refused.value.detail
