"""The invoice as the pure fiscal core sees it: a draft going in, a computed invoice coming out.

Codes (invoice type, tax group, ...) are plain strings in the draft on purpose: the HTTP layer
passes through whatever the client sent and the jurisdiction rejects unknown codes with its own
stable rule codes, so one place (the jurisdiction's data) decides what is valid.

Amounts are ``Decimal``. A credit note carries positive amounts; its type (FA, EA) says it is a
credit, so totals never change sign with the document type.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any


from stalela.kit import canonical
from stalela.kit.money import decimal_str, money_str

# --------------------------------------------------------------------------------------- input


@dataclass(frozen=True, kw_only=True)
class DraftLine:
    description: str
    item_type: str
    tax_group: str
    quantity: Decimal
    unit_price: Decimal
    code: str | None = None


@dataclass(frozen=True, kw_only=True)
class Buyer:
    type: str
    name: str | None = None
    tax_id: str | None = None
    exemption_ref: str | None = None


@dataclass(frozen=True, kw_only=True)
class Payment:
    method: str
    amount: Decimal


@dataclass(frozen=True, kw_only=True)
class Exchange:
    """A foreign-currency equivalent shown on the invoice; ``rate`` is base-currency units per 1."""

    currency: str
    rate: Decimal
    date: date | str


@dataclass(frozen=True, kw_only=True)
class InvoiceDraft:
    type: str
    price_mode: str = "ht"
    lines: tuple[DraftLine, ...] = ()
    buyer: Buyer | None = None
    nature: str | None = None
    original: str | None = None
    payments: tuple[Payment, ...] | None = None
    currency: str = "CDF"
    exchange: Exchange | None = None

    def __post_init__(self) -> None:
        # Callers building drafts from JSON naturally pass lists; freeze them so the draft stays
        # hashable and cannot change between validation and computation.
        if not isinstance(self.lines, tuple):
            object.__setattr__(self, "lines", tuple(self.lines))
        if self.payments is not None and not isinstance(self.payments, tuple):
            object.__setattr__(self, "payments", tuple(self.payments))


@dataclass(frozen=True, kw_only=True)
class OriginalInvoice:
    """What the caller found in its database for a credit note's ``original``.

    ``credited_total`` is the sum of the totals of the credit notes already sealed against it.
    """

    fiscal_number: str
    type: str
    total: Decimal
    credited_total: Decimal = Decimal("0.00")


# -------------------------------------------------------------------------------------- output


@dataclass(frozen=True, slots=True)
class ComputedLine:
    index: int  # 0-based, the same index as in the error field paths ("lines[2].quantity")
    description: str
    code: str | None
    item_type: str
    tax_group: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "description": self.description,
            "code": self.code,
            "item_type": self.item_type,
            "tax_group": self.tax_group,
            "quantity": decimal_str(self.quantity),
            "unit_price": money_str(self.unit_price),
            "amount": money_str(self.amount),
        }


@dataclass(frozen=True, slots=True)
class GroupTotal:
    group: str
    rate: Decimal
    amount: Decimal  # sum of the group's line amounts, as priced (before or tax included)
    base: Decimal
    vat: Decimal

    def as_json(self) -> dict[str, str]:
        return {
            "group": self.group,
            "rate": decimal_str(self.rate),
            "amount": money_str(self.amount),
            "base": money_str(self.base),
            "vat": money_str(self.vat),
        }


@dataclass(frozen=True, slots=True)
class Totals:
    groups: tuple[GroupTotal, ...]  # only the groups present on the invoice, sorted by letter
    total: Decimal
    vat_settled_by_credit: Decimal
    payable: Decimal

    def group(self, letter: str) -> GroupTotal | None:
        return next((g for g in self.groups if g.group == letter), None)

    def as_json(self) -> dict[str, Any]:
        return {
            "groups": [g.as_json() for g in self.groups],
            "total": money_str(self.total),
            "vat_settled_by_credit": money_str(self.vat_settled_by_credit),
            "payable": money_str(self.payable),
        }


@dataclass(frozen=True, slots=True)
class ExchangeInfo:
    currency: str
    rate: Decimal
    date: date
    total_foreign: Decimal

    def as_json(self) -> dict[str, str]:
        return {
            "currency": self.currency,
            "rate": decimal_str(self.rate),
            "date": self.date.isoformat(),
            "total_foreign": money_str(self.total_foreign),
        }


@dataclass(frozen=True, slots=True)
class ComputedInvoice:
    jurisdiction: str
    type: str
    price_mode: str
    currency: str
    lines: tuple[ComputedLine, ...]
    totals: Totals
    buyer: Buyer | None
    nature: str | None
    original: str | None
    payments: tuple[Payment, ...] | None
    exchange: ExchangeInfo | None = field(default=None)

    @property
    def total(self) -> Decimal:
        return self.totals.total

    def lines_as_json(self) -> list[dict[str, Any]]:
        return [line.as_json() for line in self.lines]

    def totals_as_json(self) -> dict[str, Any]:
        return self.totals.as_json()

    def exchange_as_json(self) -> dict[str, str] | None:
        return self.exchange.as_json() if self.exchange else None

    def buyer_as_json(self) -> dict[str, str | None] | None:
        if self.buyer is None:
            return None
        b = self.buyer
        return {
            "type": b.type, "name": b.name, "tax_id": b.tax_id, "exemption_ref": b.exemption_ref
        }

    def payments_as_json(self) -> list[dict[str, str]] | None:
        if self.payments is None:
            return None
        return [{"method": p.method, "amount": money_str(p.amount)} for p in self.payments]

    def lines_digest(self) -> str:
        return lines_digest(self.lines_as_json())

    def as_json(self) -> dict[str, Any]:
        return {
            "jurisdiction": self.jurisdiction,
            "type": self.type,
            "price_mode": self.price_mode,
            "currency": self.currency,
            "buyer": self.buyer_as_json(),
            "nature": self.nature,
            "original": self.original,
            "lines": self.lines_as_json(),
            "totals": self.totals_as_json(),
            "payments": self.payments_as_json(),
            "exchange": self.exchange_as_json(),
        }


def lines_digest(lines_json: list[dict[str, Any]]) -> str:
    """Lowercase hex SHA-256 of the RFC 8785 canonical JSON of the canonical lines.

    The seal signs this digest instead of the lines themselves, so the payload stays small for a
    thousand-line invoice while still committing to every line.
    """
    return hashlib.sha256(canonical.dumps(lines_json)).hexdigest()
