"""The neutral order every platform module produces and every jurisdiction module reads, and the three
answers of the mapping (Mapped, Parked, Skipped) with their stable reason codes.

Four platforms times two jurisdictions would be eight mappings; through this model they are four
readers and two writers, and a rule (how a discount is shared, what shipping is) lives in one place.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, Literal

from stalela.kit.money import ZERO, money_context

GOODS = "goods"
SHIPPING = "shipping"
FEE = "fee"  # WooCommerce fee lines (gift wrap, a payment surcharge): a service the shop charges
LineKind = Literal["goods", "shipping", "fee"]

# How the buyer identified itself: Argentina's kinds as Mercado Libre names them, or TAX_ID for a
# number whose kind the platform does not say (Shopify note attribute, WooCommerce VAT meta, Tienda
# Nube's contact_identification); each jurisdiction decides what such a number is.
ID_TYPES = frozenset({"CUIT", "CUIL", "DNI", "TAX_ID"})

OrderState = Literal["paid", "unpaid", "refunded", "partially_refunded", "cancelled"]


@dataclass(frozen=True, kw_only=True)
class Line:
    description: str
    sku: str | None
    quantity: Decimal
    # What the line comes to before its discounts (quantity x unit price as the platform states it),
    # tax included exactly when the order's taxes_included is. An amount rather than a unit price:
    # WooCommerce gives line amounts, and an amount is what the invoice must reproduce to the cent.
    subtotal: Decimal
    discount: Decimal = ZERO  # the line's discounts in total, on the same basis as subtotal
    # The rate the platform taxed the line at (0.16); 0 when it says the line is untaxed; None when
    # it says nothing (Mercado Libre and Tienda Nube never do: their prices simply include IVA).
    tax_rate: Decimal | None = None
    kind: LineKind = GOODS

    @property
    def amount(self) -> Decimal:
        with money_context():
            return self.subtotal - self.discount


@dataclass(frozen=True, kw_only=True)
class Buyer:
    name: str | None = None
    company: str | None = None
    id_type: str | None = None  # one of ID_TYPES
    id_number: str | None = None
    # Argentina's IVA condition (an `ar_data.VAT_CONDITIONS` name) when the platform states it
    # (Mercado Libre's billing_info taxpayer_type); None when it does not.
    vat_condition: str | None = None
    email: str | None = None
    address: str | None = None
    reference: str | None = None  # "<platform>:customer:<id>": an erasure request can name the buyer by it


@dataclass(frozen=True, kw_only=True)
class Order:
    platform: str
    key: str  # order_key: what makes the order one invoice (Mercado Libre: the pack)
    currency: str  # ISO 4217 as the platform gives it
    # Prices include tax (Shopify taxes_included, WooCommerce prices_include_tax, always on Mercado
    # Libre and Tienda Nube), or the order charged no tax at all: then what was paid is the price and
    # the jurisdiction's VAT is inside it.
    taxes_included: bool
    lines: tuple[Line, ...]
    buyer: Buyer
    total: Decimal  # what the platform says the buyer paid for the order
    # Lines whose figures the platform rounded on its own before adding them up (a tax computed per
    # line while the jurisdiction taxes per group): each may move the total by up to a cent.
    rounding_lines: int = 0


# ----------------------------------------------------------------------------------- answers

# Why an order is parked: stable codes (the console and docs/connectors.md list them).
TOTALS_MISMATCH = "totals_mismatch"
REASONS: dict[str, str] = {
    TOTALS_MISMATCH: "our total for the mapped invoice differs from the platform's order total by more "
                     "than the rounding rule allows",
    "unsupported_currency": "the order's currency is not one the connection accepts, or no exchange rate "
                            "was given for it",
    "partial_refund": "part of the order was refunded: which lines to invoice (or credit) is a person's call",
    "missing_buyer_id": "the invoice must identify the buyer (Argentina: an A receipt's CUIT, or a B/C "
                        "receipt at or above the consumidor final threshold) and the order does not",
    "invalid_buyer_id": "the buyer's identification is malformed (a CUIT check digit, a DNI's length)",
    "missing_buyer_name": "the invoice must name the buyer (a DRC company, an Argentine A receipt) and the "
                          "order does not",
    "unknown_taxpayer_type": "Mercado Libre states a taxpayer type the mapping does not know",
    "unmappable_tax": "the platform taxed a line at a rate that is not one of the jurisdiction's",
    "empty_order": "the order has no line to invoice",
    "invalid_order": "the order is missing a field or carries a value that cannot be read",
    "rejected_by_rules": "the jurisdiction's rules refuse the mapped invoice (the detail names the rule)",
}
SKIP_REASONS: dict[str, str] = {
    "unpaid": "not paid yet: no invoice until it is",
    "refunded": "refunded in full before any invoice was sealed: no invoice",
    "cancelled": "cancelled or voided before any invoice was sealed: no invoice",
    "not_refunded": "nothing to credit: the order is not refunded",
}


@dataclass(frozen=True)
class Mapped:
    """A request body ``POST /v1/invoices`` accepts, checked against the platform's total."""

    body: dict[str, Any]
    total: str  # our total, computed by the jurisdiction's engine, in the order's currency
    platform_total: str
    difference: str  # total - platform_total
    allowed: str  # how far the two may differ for this order (the rounding rule, totals.py)
    kind: Literal["invoice", "credit_note"] = "invoice"
    outcome: Literal["mapped"] = field(default="mapped", init=False)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Parked:
    """Not sealed: a person looks at it in the console. ``difference`` (ours - platform's) and the two
    totals are set when the totals were compared."""

    reason: str
    detail: str
    difference: str | None = None
    total: str | None = None
    platform_total: str | None = None
    allowed: str | None = None
    outcome: Literal["parked"] = field(default="parked", init=False)

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise ValueError(f"Parked: unknown reason {self.reason!r}")

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Skipped:
    """No invoice, and nothing wrong: the order is not (or no longer) one to invoice."""

    reason: str
    detail: str
    outcome: Literal["skipped"] = field(default="skipped", init=False)

    def __post_init__(self) -> None:
        if self.reason not in SKIP_REASONS:
            raise ValueError(f"Skipped: unknown reason {self.reason!r}")

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


Result = Mapped | Parked | Skipped
