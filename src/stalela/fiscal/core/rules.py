"""What every jurisdiction offers, and the tax arithmetic they share.

A jurisdiction module owns its data (groups, rates, codes) and its rules; the arithmetic that turns
lines into per-group base and VAT is the same everywhere once a group is described by a `TaxGroup`,
so it lives here and is tested once.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol, runtime_checkable

from stalela.errors import FiscalRuleViolation
from stalela.fiscal.core.invoice import (
    ComputedInvoice,
    ComputedLine,
    GroupTotal,
    InvoiceDraft,
    OriginalInvoice,
    Totals,
)
from stalela.kit.money import (
    ZERO,
    decimal_places,
    money_context,
    multiply_money,
    round_money,
    round_money_ratio,
)

PRICE_MODE_HT = "ht"  # unit prices exclude VAT; VAT is added per group
PRICE_MODE_TTC = "ttc"  # unit prices include VAT; VAT is extracted per group


@dataclass(frozen=True, slots=True)
class TaxGroup:
    letter: str
    name: str
    rate: Decimal
    # The group's line amounts ARE tax (DRC group N: the specific VAT of regulated-price sales):
    # they count as VAT, never as base, whatever the price mode.
    amount_is_vat: bool = False
    # VAT invoiced but paid by a tax credit rather than by the buyer (DRC groups F and G).
    settled_by_credit: bool = False


@runtime_checkable
class Jurisdiction(Protocol):
    code: str
    currency: str
    invoice_types: frozenset[str]
    credit_note_types: frozenset[str]
    tax_groups: Mapping[str, TaxGroup]
    default_timezone: str  # an outlet's timezone when its creator names none
    # How a credit note's ``original`` names the invoice it corrects: its "fiscal_number" (DRC) or
    # its invoice "id" (Argentina, where numbers repeat across receipt types and points of sale).
    original_by: str
    # Whether an outlet is an authority-registered point of sale with a number (Argentina's PtoVta).
    needs_point_of_sale: bool

    def series_code(self, invoice_type: str) -> str:
        """The numbering series of an outlet an invoice of ``invoice_type`` takes its number from:
        one per outlet in the DRC ("main"), one per receipt type in Argentina."""
        ...

    def fiscal_number(self, outlet_code: str, point_of_sale: int | None, invoice_type: str,
                      counter: int, generation: int = 1) -> str:
        """The fiscal number of counter ``counter`` of the series (``generation``: see Series)."""
        ...

    def check_issue_date(self, invoice: ComputedInvoice, issue_date: date) -> None:
        """Rules that need the date the invoice is issued on (in the outlet's timezone), which only the
        sealer knows: raise `FiscalRuleViolation` before a number is used."""
        ...

    def original_types_for(self, credit_type: str) -> frozenset[str]:
        """Invoice types a credit note of ``credit_type`` may cite; empty for other types."""
        ...

    def validate(self, draft: InvoiceDraft, original: OriginalInvoice | None = None) -> None:
        """Raise `FiscalRuleViolation` for the first broken rule; return None when all pass."""
        ...

    def compute(
        self, draft: InvoiceDraft, original: OriginalInvoice | None = None
    ) -> ComputedInvoice:
        """Validate, then compute. Raises `FiscalRuleViolation`."""
        ...


# ---------------------------------------------------------------------------------- arithmetic


def line_amount(quantity: Decimal, unit_price: Decimal) -> Decimal:
    return multiply_money(quantity, unit_price)


def group_base_and_vat(
    amount: Decimal, group: TaxGroup, price_mode: str
) -> tuple[Decimal, Decimal]:
    """Split a group's amount into (base, vat), rounding once per group, never per line.

    Rounding per group (as Benin's e-MECeF, of the same lineage as the DRC e-MCF, does) keeps the
    VAT within half a cent of the exact figure however many lines the group has.
    """
    if group.amount_is_vat:
        return ZERO, amount
    if group.rate.is_zero():
        return amount, ZERO
    if price_mode == PRICE_MODE_TTC:
        with money_context():
            vat = round_money_ratio(amount * group.rate, 1 + group.rate)
            return amount - vat, vat
    return amount, multiply_money(amount, group.rate)


def compute_totals(
    lines: Iterable[ComputedLine], groups: Mapping[str, TaxGroup], price_mode: str
) -> Totals:
    with money_context():
        amounts: dict[str, Decimal] = {}
        for line in lines:
            amounts[line.tax_group] = amounts.get(line.tax_group, ZERO) + line.amount
        group_totals = []
        for letter in sorted(amounts):
            spec = groups[letter]
            base, vat = group_base_and_vat(amounts[letter], spec, price_mode)
            group_totals.append(GroupTotal(letter, spec.rate, amounts[letter], base, vat))
        total = sum((g.base + g.vat for g in group_totals), ZERO)
        by_credit = sum((g.vat for g in group_totals if groups[g.group].settled_by_credit), ZERO)
    return Totals(
        groups=tuple(group_totals),
        total=round_money(total),
        vat_settled_by_credit=round_money(by_credit),
        payable=round_money(total - by_credit),
    )


# ------------------------------------------------------------------------ validation helpers


def fail(code: str, field: str, detail: str) -> FiscalRuleViolation:
    return FiscalRuleViolation(code, field, detail)


def is_blank(value: object) -> bool:
    return not isinstance(value, str) or not value.strip()


def check_decimal(
    value: object,
    field: str,
    *,
    invalid_code: str,
    precision_code: str,
    places: int,
    minimum: Decimal,
    minimum_inclusive: bool,
    maximum: Decimal,
    too_large_code: str | None = None,
) -> Decimal:
    """Check one numeric input and return it as a Decimal.

    Floats are refused outright: a float has already lost the value the client meant (0.1 is not
    one tenth), and accepting it would let rounding depend on how the caller parsed JSON.
    """
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise fail(invalid_code, field, f"must be a decimal number, got {type(value).__name__}")
    number = Decimal(value)
    if not number.is_finite():
        raise fail(invalid_code, field, f"must be a finite number, got {number}")
    below = number < minimum if minimum_inclusive else number <= minimum
    if below:
        bound = "at least" if minimum_inclusive else "greater than"
        raise fail(invalid_code, field, f"must be {bound} {minimum}, got {number}")
    if decimal_places(number) > places:
        raise fail(precision_code, field, f"at most {places} decimal places, got {number}")
    if number >= maximum:
        raise fail(too_large_code or invalid_code, field, f"must be less than {maximum}")
    return number


class LineLimits(Protocol):
    description_max: int
    code_max: int
    quantity_places: int
    price_places: int
    max_quantity: Decimal
    max_amount: Decimal


# The checks every jurisdiction makes of a line's text and numbers, with the same codes everywhere;
# what sits between them (how a line is taxed) is each jurisdiction's own.

def check_line_text(at: str, description: object, code: object, limits: LineLimits) -> None:
    if not isinstance(description, str) or not description.strip() or len(description) > limits.description_max:
        raise fail("description_length", f"{at}.description",
                   f"must be 1 to {limits.description_max} characters and not blank")
    if code is not None and (is_blank(code) or len(code) > limits.code_max):  # type: ignore[arg-type]
        raise fail("line_code_invalid", f"{at}.code",
                   f"when present, 1 to {limits.code_max} characters and not blank")


def check_quantity_and_price(at: str, quantity: object, unit_price: object,
                             limits: LineLimits) -> tuple[Decimal, Decimal]:
    checked_quantity = check_decimal(
        quantity, f"{at}.quantity",
        invalid_code="quantity_invalid", precision_code="quantity_precision",
        too_large_code="quantity_too_large", places=limits.quantity_places,
        minimum=ZERO, minimum_inclusive=False, maximum=limits.max_quantity,
    )
    checked_price = check_decimal(
        unit_price, f"{at}.unit_price",
        invalid_code="unit_price_invalid", precision_code="unit_price_precision",
        too_large_code="unit_price_too_large", places=limits.price_places,
        minimum=ZERO, minimum_inclusive=True, maximum=limits.max_amount,
    )
    return checked_quantity, checked_price


def checked_line_amount(at: str, quantity: Decimal, unit_price: Decimal, limits: LineLimits) -> Decimal:
    amount = line_amount(quantity, unit_price)
    if amount >= limits.max_amount:
        raise fail("line_amount_too_large", at, f"quantity x unit_price must be less than {limits.max_amount}")
    return amount
