"""What ``POST /v1/invoices`` accepts, as data and one pure check: members, lengths, amounts, dates.

The API's schema (``fiscal/invoices/schemas.py``, pydantic) is the cloud's gate; the offline sealer has no
pydantic and must refuse, before it numbers anything, every request the cloud would refuse when the
invoice comes back (a quantity of ``1e-9999999`` sealed as 0.00 would be refused at the merge, its number
spent). This module states the same limits without pydantic; tests/fiscal/core/test_limits.py checks
member by member that the two agree, and feeds both the same awkward values.

The amount check is pydantic's ``max_digits``: trailing zeros do not count (``1.000`` is one digit),
and a number has at least as many digits as decimal places (``1e-19`` has nineteen).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Union

MAX_DIGITS = 18
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(9998, 12, 31)  # kit.schemas.CalendarDate's range
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class Text:
    max_length: int
    min_length: int = 0
    pattern: str | None = None


@dataclass(frozen=True)
class Amount:
    """A decimal: a string or an integer (a float too, as the API reads it), finite, ≤ MAX_DIGITS digits."""


@dataclass(frozen=True)
class Day:
    """A calendar date, only ever the text YYYY-MM-DD, between FIRST_DAY and LAST_DAY."""


@dataclass(frozen=True)
class Flag:
    """true or false, nothing else (pydantic's StrictBool)."""


@dataclass(frozen=True)
class Many:
    item: "Shape"
    max_items: int


@dataclass(frozen=True)
class Member:
    kind: Union[Text, Amount, Day, Flag, Many, "Shape"]
    required: bool = False
    nullable: bool = True  # an optional member may be given as null (but not new_subject)


Shape = dict  # member name -> Member: an object admitting exactly these members


def _req(kind: Any) -> Member:
    return Member(kind, required=True, nullable=False)


def _opt(kind: Any) -> Member:
    return Member(kind)


CODE = Text(16)

LINE: Shape = {
    "description": _req(Text(1000)), "code": _opt(Text(64)), "item_type": _opt(CODE), "tax_group": _opt(CODE),
    "vat_rate": _opt(CODE), "quantity": _req(Amount()), "unit_price": _req(Amount()),
}
BUYER: Shape = {
    "type": _opt(CODE), "name": _opt(Text(200)), "tax_id": _opt(Text(64)), "exemption_ref": _opt(Text(100)),
    "doc_type": _opt(CODE), "doc_number": _opt(Text(20)), "vat_condition": _opt(Text(40)),
    "email": _opt(Text(254, pattern=r"^[^@\s]+@[^@\s]+$")), "phone": _opt(Text(40)), "address": _opt(Text(500)),
    "reference": _opt(Text(100)), "new_subject": Member(Flag(), nullable=False),
}
PAYMENT: Shape = {"method": _req(CODE), "amount": _req(Amount())}
EXCHANGE: Shape = {"currency": _req(CODE), "rate": _req(Amount()), "date": _req(Day())}
INVOICE: Shape = {
    "outlet_id": _req(Text(64)), "type": _req(CODE), "price_mode": _opt(CODE), "lines": _req(Many(LINE, 10_000)),
    "buyer": _opt(BUYER), "nature": _opt(CODE), "original": _opt(Text(64)), "payments": _opt(Many(PAYMENT, 100)),
    "currency": _opt(CODE), "exchange": _opt(EXCHANGE), "reference": _opt(Text(100, min_length=1)),
    "concept": _opt(CODE), "service_from": _opt(Day()), "service_to": _opt(Day()), "payment_due": _opt(Day()),
    "exchange_rate": _opt(Amount()),
}


class RequestInvalid(ValueError):
    """The request breaks one of the API's limits; ``field`` is where (``lines[3].quantity``)."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}" if field else detail)
        self.field = field
        self.detail = detail


def check_invoice_request(request: Any) -> None:
    """Raise ``RequestInvalid`` at the first member ``POST /v1/invoices`` would refuse."""
    _check_object(request, INVOICE, "")


def amount_problem(value: Any) -> str | None:
    """Why ``value`` is not an amount the API takes, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, str, Decimal, float)):
        return "an amount is a decimal string or an integer"
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, ValueError):
        return "not a decimal number"
    if not number.is_finite():
        return "an amount is a finite number"
    _, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    significant = text.rstrip("0")
    if not significant:
        return None  # zero, whatever its exponent
    exponent += len(text) - len(significant)
    places = -exponent if exponent < 0 else 0
    count = len(significant) + exponent if exponent >= 0 else max(len(significant), places)
    if count > MAX_DIGITS:
        return f"at most {MAX_DIGITS} digits in all"
    return None


def _day_problem(value: Any) -> str | None:
    if isinstance(value, date) and not isinstance(value, datetime):
        day = value
    elif isinstance(value, str) and _DAY.fullmatch(value):
        try:
            day = date.fromisoformat(value)
        except ValueError:
            return "not a calendar date"
    else:
        return "a date is a YYYY-MM-DD string"
    if not FIRST_DAY <= day <= LAST_DAY:
        return "a date lies between 1900-01-01 and 9998-12-31"
    return None


def _text_problem(value: Any, kind: Text) -> str | None:
    if not isinstance(value, str):
        return "a string"
    if "\x00" in value:
        return "NUL characters are not allowed"
    if len(value) > kind.max_length:
        return f"at most {kind.max_length} characters"
    if len(value) < kind.min_length:
        return f"at least {kind.min_length} character{'s' if kind.min_length > 1 else ''}"
    if kind.pattern is not None and not re.fullmatch(kind.pattern, value):
        return f"must match {kind.pattern}"
    return None


def _check_object(value: Any, shape: Shape, at: str) -> None:
    if not isinstance(value, dict):
        raise RequestInvalid(at, "an object")
    unknown = sorted(set(value) - set(shape), key=str)
    if unknown:
        raise RequestInvalid(_at(at, str(unknown[0])), "unknown member")
    for name, member in shape.items():
        here = _at(at, name)
        if name not in value:
            if member.required:
                raise RequestInvalid(here, "required")
            continue
        item = value[name]
        if item is None:
            if not member.nullable:
                raise RequestInvalid(here, "may not be null")
            continue
        _check_value(item, member.kind, here)


def _check_value(value: Any, kind: Any, at: str) -> None:
    if isinstance(kind, dict):
        _check_object(value, kind, at)
        return
    if isinstance(kind, Many):
        if not isinstance(value, list):
            raise RequestInvalid(at, "a list")
        if len(value) > kind.max_items:
            raise RequestInvalid(at, f"at most {kind.max_items} items")
        for i, item in enumerate(value):
            _check_object(item, kind.item, f"{at}[{i}]")
        return
    if isinstance(kind, Text):
        problem = _text_problem(value, kind)
    elif isinstance(kind, Amount):
        problem = amount_problem(value)
    elif isinstance(kind, Day):
        problem = _day_problem(value)
    else:
        problem = None if isinstance(value, bool) else "true or false"
    if problem is not None:
        raise RequestInvalid(at, problem)


def _at(at: str, name: str) -> str:
    return f"{at}.{name}" if at else name
