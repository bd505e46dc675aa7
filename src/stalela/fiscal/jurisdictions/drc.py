"""Democratic Republic of the Congo (DGI, facture normalisée).

Every code, rate, letter and limit is data at the top of this module, so that the rules can be
adjusted when the DGI's official homologation texts are in hand without touching the logic below.
Sources and the rules that are our own choice are listed in docs/jurisdictions/drc.md.

Checks run in a fixed order and the first failure is raised, so the same draft always produces
the same error (see the order in `DRC.validate`).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from types import MappingProxyType

from stalela.fiscal.core.invoice import (
    Buyer,
    ComputedInvoice,
    ComputedLine,
    DraftLine,
    Exchange,
    ExchangeInfo,
    InvoiceDraft,
    OriginalInvoice,
    Payment,
    Totals,
)
from stalela.fiscal.core.numbering import format_fiscal_number, is_fiscal_number
from stalela.fiscal.core.rules import (
    PRICE_MODE_HT,
    PRICE_MODE_TTC,
    TaxGroup,
    check_decimal,
    check_line_text,
    check_quantity_and_price,
    checked_line_amount,
    compute_totals,
    fail,
    is_blank,
)
from stalela.kit.money import money_context, money_str, round_money, round_money_ratio

# ------------------------------------------------------------------------------------------ data

CODE = "CD"
CURRENCY = "CDF"
TIMEZONE = "Africa/Kinshasa"
SERIES = "main"  # one gap-free series per outlet, whatever the invoice type

INVOICE_TYPES: Mapping[str, str] = MappingProxyType({
    "FV": "Facture de vente",
    "FT": "Facture d'acompte",
    "FA": "Facture d'avoir",
    "EV": "Facture de vente à l'exportation",
    "ET": "Facture d'acompte à l'exportation",
    "EA": "Facture d'avoir à l'exportation",
})
EXPORT_TYPES = frozenset({"EV", "ET", "EA"})
# A credit note may only cite a sale or an advance of its own family (domestic or export).
CREDIT_NOTE_ORIGINAL_TYPES: Mapping[str, frozenset[str]] = MappingProxyType({
    "FA": frozenset({"FV", "FT"}),
    "EA": frozenset({"EV", "ET"}),
})
CREDIT_NOTE_TYPES = frozenset(CREDIT_NOTE_ORIGINAL_TYPES)

PRICE_MODES = frozenset({PRICE_MODE_HT, PRICE_MODE_TTC})

_NO_VAT = Decimal("0")
TAX_GROUPS: Mapping[str, TaxGroup] = MappingProxyType({g.letter: g for g in (
    TaxGroup("A", "Exonéré", _NO_VAT),
    TaxGroup("B", "Taxable, taux normal", Decimal("0.16")),
    TaxGroup("C", "Taxable, taux réduit", Decimal("0.08")),
    TaxGroup("D", "Régimes dérogatoires (TVA à charge de l'État)", _NO_VAT),
    TaxGroup("E", "Exportations et opérations assimilées", _NO_VAT),
    TaxGroup("F", "Marchés publics à financement extérieur 16 %", Decimal("0.16"),
             settled_by_credit=True),
    TaxGroup("G", "Marchés publics à financement extérieur 8 %", Decimal("0.08"),
             settled_by_credit=True),
    TaxGroup("H", "Consignation d'emballages", _NO_VAT),
    TaxGroup("I", "Garanties et cautions", _NO_VAT),
    TaxGroup("J", "Débours", _NO_VAT),
    TaxGroup("K", "Ventes par des non-assujettis à la TVA", _NO_VAT),
    TaxGroup("L", "Prélèvements hors base TVA", _NO_VAT),
    TaxGroup("M", "Ventes à prix réglementé (TVA spécifique)", _NO_VAT),
    TaxGroup("N", "TVA spécifique des ventes du groupe M", _NO_VAT, amount_is_vat=True),
)})

GOODS_GROUPS = frozenset("ABCDEFGHIJKM")
LEVY_GROUPS = frozenset("LN")
# item type -> (the groups it may use, the rule code when it uses another)
ITEM_TYPES: Mapping[str, tuple[frozenset[str], str]] = MappingProxyType({
    "BIE": (GOODS_GROUPS, "goods_line_group_invalid"),
    "SER": (GOODS_GROUPS, "goods_line_group_invalid"),
    "TAX": (LEVY_GROUPS, "tax_line_group_invalid"),
})
EXPORT_GROUP = "E"
EXPORT_ITEM_TYPES = frozenset({"BIE", "SER"})  # on export types these lines must be in group E
SPECIFIC_VAT_GROUP = "N"
SPECIFIC_VAT_BASE_GROUP = "M"  # group N only on an invoice with a group M line
STATE_BORNE_GROUP = "D"
STATE_BORNE_BUYER_TYPES = frozenset({"AO"})

ANONYMOUS_BUYER_TYPE = "PP"  # an absent buyer is an anonymous natural person
# buyer type -> the fields it must carry
BUYER_TYPES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "PP": (),
    "PM": ("name", "tax_id"),
    "PC": ("name", "tax_id"),
    "PL": ("name", "tax_id"),
    "AO": ("name", "exemption_ref"),
})
BUYER_FIELD_CODES: Mapping[str, str] = MappingProxyType({
    "name": "buyer_name_required",
    "tax_id": "buyer_tax_id_required",
    "exemption_ref": "buyer_exemption_ref_required",
})

CREDIT_NOTE_NATURES: Mapping[str, str] = MappingProxyType({
    "COR": "Correction",
    "RAN": "RAN (meaning not stated in the public sources)",
    "RAM": "RAM (meaning not stated in the public sources)",
    "RRR": "Rabais, remises, ristournes",
})
# Rebates often cover many invoices or a period, so RRR need not cite one original.
NATURES_WITHOUT_ORIGINAL = frozenset({"RRR"})

PAYMENT_METHODS = frozenset({
    "ESPECES", "VIREMENT", "CARTEBANCAIRE", "MOBILEMONEY", "CHEQUES", "CREDIT", "AUTRE",
})
EXCHANGE_CURRENCIES = frozenset({"USD"})


@dataclass(frozen=True)
class Limits:
    min_lines: int = 1
    max_lines: int = 1000
    description_max: int = 200
    code_max: int = 64  # our own bound: the public sources give none
    quantity_places: int = 3
    price_places: int = 2
    exchange_rate_places: int = 6
    # Our own bounds (no public source): every amount fits NUMERIC(18,2) and a signed 64-bit count
    # of cents, and no product of two inputs can exceed exact decimal arithmetic.
    max_quantity: Decimal = Decimal("1000000000000")  # exclusive
    max_amount: Decimal = Decimal("10000000000000000")  # exclusive: unit price, line, total
    max_exchange_rate: Decimal = Decimal("1000000000")  # exclusive


LIMITS = Limits()
_ZERO = Decimal("0")

# ----------------------------------------------------------------------------------- the rules


class DRC:
    code = CODE
    currency = CURRENCY
    invoice_types = frozenset(INVOICE_TYPES)
    credit_note_types = CREDIT_NOTE_TYPES
    tax_groups = TAX_GROUPS
    default_timezone = TIMEZONE
    original_by = "fiscal_number"
    needs_point_of_sale = False

    def series_code(self, invoice_type: str) -> str:
        return SERIES

    def fiscal_number(self, outlet_code: str, point_of_sale: int | None, invoice_type: str,
                      counter: int, generation: int = 1) -> str:
        return format_fiscal_number(outlet_code, counter)

    def check_issue_date(self, invoice: ComputedInvoice, issue_date: date) -> None:
        return None  # nothing of a DRC invoice depends on its sealing date

    def original_types_for(self, credit_type: str) -> frozenset[str]:
        return CREDIT_NOTE_ORIGINAL_TYPES.get(credit_type, frozenset())

    def validate(self, draft: InvoiceDraft, original: OriginalInvoice | None = None) -> None:
        self.compute(draft, original)

    def compute(
        self, draft: InvoiceDraft, original: OriginalInvoice | None = None
    ) -> ComputedInvoice:
        # The order is part of the contract (docs/jurisdictions/drc.md, "Order of the checks"):
        # header, exchange, credit-note fields, buyer, lines in order, total, the cited original,
        # then payments, which need the payable amount.
        if draft.price_mode is None:
            draft = replace(draft, price_mode=PRICE_MODE_HT)
        _check_not_applicable(draft)
        _check_header(draft)
        exchange_rate = _check_exchange(draft.exchange)
        _check_credit_note_fields(draft)
        buyer_type = _check_buyer(draft.buyer)
        lines = _check_lines(draft, buyer_type)
        totals = compute_totals(lines, TAX_GROUPS, draft.price_mode)
        if totals.total >= LIMITS.max_amount:
            raise fail("total_too_large", "lines",
                       f"the total must be less than {LIMITS.max_amount}")
        _check_original(draft, original, totals)
        _check_payments(draft.payments, totals)
        return ComputedInvoice(
            jurisdiction=CODE,
            type=draft.type,
            price_mode=draft.price_mode,
            currency=draft.currency,
            lines=lines,
            totals=totals,
            buyer=draft.buyer,
            nature=draft.nature,
            original=draft.original,
            payments=draft.payments,
            exchange=_exchange_info(draft.exchange, exchange_rate, totals),
        )


_OTHER_FIELDS = ("concept", "service_from", "service_to", "payment_due", "exchange_rate")
_OTHER_BUYER_FIELDS = ("doc_type", "doc_number", "vat_condition")


def _check_not_applicable(draft: InvoiceDraft) -> None:
    """Another jurisdiction's fields are refused, never silently ignored: a client that sends them
    believes they mean something on this invoice."""
    for name in _OTHER_FIELDS:
        if getattr(draft, name) is not None:
            raise fail("field_not_applicable", name, f"{name} is not a field of {CODE} invoices")
    for name in _OTHER_BUYER_FIELDS:
        if draft.buyer is not None and getattr(draft.buyer, name) is not None:
            raise fail("field_not_applicable", f"buyer.{name}", f"{name} is not a field of {CODE} buyers")
    for i, line in enumerate(draft.lines):
        if line.vat_rate is not None:
            raise fail("field_not_applicable", f"lines[{i}].vat_rate",
                       f"{CODE} lines use item_type and tax_group, not vat_rate")


def _check_header(draft: InvoiceDraft) -> None:
    if draft.type not in INVOICE_TYPES:
        raise fail("invalid_invoice_type", "type",
                   f"{draft.type!r} is not one of {', '.join(INVOICE_TYPES)}")
    if draft.price_mode not in PRICE_MODES:
        raise fail("invalid_price_mode", "price_mode",
                   f"{draft.price_mode!r} is not one of {', '.join(sorted(PRICE_MODES))}")
    if draft.currency != CURRENCY:
        raise fail("currency_unsupported", "currency",
                   f"invoices are issued in {CURRENCY}; show another currency with 'exchange'")


def _check_exchange(exchange: Exchange | None) -> Decimal | None:
    if exchange is None:
        return None
    if exchange.currency not in EXCHANGE_CURRENCIES:
        raise fail("exchange_invalid", "exchange.currency",
                   f"{exchange.currency!r} is not one of {', '.join(sorted(EXCHANGE_CURRENCIES))}")
    rate = check_decimal(
        exchange.rate, "exchange.rate",
        invalid_code="exchange_invalid", precision_code="exchange_invalid",
        places=LIMITS.exchange_rate_places, minimum=_ZERO, minimum_inclusive=False,
        maximum=LIMITS.max_exchange_rate,
    )
    if _as_date(exchange.date) is None:
        raise fail("exchange_invalid", "exchange.date", "must be an ISO date (YYYY-MM-DD)")
    return rate


def _as_date(value: object) -> date | None:
    if isinstance(value, date):
        return value
    if isinstance(value, str) and len(value) == 10:  # fromisoformat also takes "20250101"
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


def _check_credit_note_fields(draft: InvoiceDraft) -> None:
    if draft.type not in CREDIT_NOTE_TYPES:
        if draft.nature is not None:
            raise fail("nature_not_allowed", "nature",
                       f"only credit notes carry a nature, not {draft.type}")
        if draft.original is not None:
            raise fail("original_not_allowed", "original",
                       f"only credit notes cite an original invoice, not {draft.type}")
        return
    if draft.nature is None:
        raise fail("credit_note_nature_required", "nature",
                   f"a credit note needs a nature: one of {', '.join(CREDIT_NOTE_NATURES)}")
    if draft.nature not in CREDIT_NOTE_NATURES:
        raise fail("invalid_nature", "nature",
                   f"{draft.nature!r} is not one of {', '.join(CREDIT_NOTE_NATURES)}")
    if draft.original is None:
        if draft.nature not in NATURES_WITHOUT_ORIGINAL:
            raise fail("credit_note_original_required", "original",
                       f"a {draft.nature} credit note must cite the original's fiscal number")
    elif not is_fiscal_number(draft.original):
        raise fail("credit_note_original_invalid", "original",
                   f"{draft.original!r} is not a fiscal number")


def _check_buyer(buyer: Buyer | None) -> str:
    if buyer is None:
        return ANONYMOUS_BUYER_TYPE
    if buyer.type not in BUYER_TYPES:
        raise fail("invalid_buyer_type", "buyer.type",
                   f"{buyer.type!r} is not one of {', '.join(BUYER_TYPES)}")
    for name in BUYER_TYPES[buyer.type]:
        if is_blank(getattr(buyer, name)):
            raise fail(BUYER_FIELD_CODES[name], f"buyer.{name}",
                       f"a buyer of type {buyer.type} needs {name}")
    return buyer.type


def _check_lines(draft: InvoiceDraft, buyer_type: str) -> tuple[ComputedLine, ...]:
    count = len(draft.lines)
    if not LIMITS.min_lines <= count <= LIMITS.max_lines:
        raise fail("lines_count", "lines",
                   f"an invoice has {LIMITS.min_lines} to {LIMITS.max_lines} lines, got {count}")
    has_base_group = any(line.tax_group == SPECIFIC_VAT_BASE_GROUP for line in draft.lines)
    is_export = draft.type in EXPORT_TYPES
    return tuple(
        _check_line(i, line, is_export=is_export, buyer_type=buyer_type,
                    has_base_group=has_base_group)
        for i, line in enumerate(draft.lines)
    )


def _check_line(
    i: int, line: DraftLine, *, is_export: bool, buyer_type: str, has_base_group: bool
) -> ComputedLine:
    at = f"lines[{i}]"
    description = line.description
    check_line_text(at, description, line.code, LIMITS)
    if line.item_type not in ITEM_TYPES:
        raise fail("invalid_item_type", f"{at}.item_type",
                   f"{line.item_type!r} is not one of {', '.join(ITEM_TYPES)}")
    group = line.tax_group
    if group not in TAX_GROUPS:
        raise fail("invalid_tax_group", f"{at}.tax_group",
                   f"{group!r} is not one of {', '.join(TAX_GROUPS)}")
    quantity, unit_price = check_quantity_and_price(at, line.quantity, line.unit_price, LIMITS)
    _check_line_group(at, line.item_type, group, is_export=is_export, buyer_type=buyer_type,
                      has_base_group=has_base_group)
    amount = checked_line_amount(at, quantity, unit_price, LIMITS)
    return ComputedLine(
        index=i,
        description=description,
        code=line.code,
        item_type=line.item_type,
        tax_group=group,
        quantity=quantity,
        unit_price=round_money(unit_price),
        amount=amount,
    )


def _check_line_group(
    at: str, item_type: str, group: str, *, is_export: bool, buyer_type: str, has_base_group: bool
) -> None:
    field = f"{at}.tax_group"
    allowed, code = ITEM_TYPES[item_type]
    if group not in allowed:
        raise fail(code, field, f"{item_type} lines use groups {', '.join(sorted(allowed))}")
    if group == EXPORT_GROUP and not is_export:
        raise fail("group_e_requires_export", field,
                   f"group {EXPORT_GROUP} is only for export types "
                   f"{', '.join(sorted(EXPORT_TYPES))}")
    if is_export and item_type in EXPORT_ITEM_TYPES and group != EXPORT_GROUP:
        raise fail("export_line_not_group_e", field,
                   f"on an export invoice, {item_type} lines are in group {EXPORT_GROUP}")
    if group == STATE_BORNE_GROUP and buyer_type not in STATE_BORNE_BUYER_TYPES:
        raise fail("group_d_requires_ao_buyer", field,
                   f"group {STATE_BORNE_GROUP} needs a buyer of type "
                   f"{', '.join(sorted(STATE_BORNE_BUYER_TYPES))}")
    if group == SPECIFIC_VAT_GROUP and not has_base_group:
        raise fail("group_n_without_m", field,
                   f"group {SPECIFIC_VAT_GROUP} needs a group {SPECIFIC_VAT_BASE_GROUP} line "
                   "on the same invoice")


def _check_original(draft: InvoiceDraft, original: OriginalInvoice | None, totals: Totals) -> None:
    if draft.type not in CREDIT_NOTE_TYPES or draft.original is None:
        return
    if original is None:
        raise fail("credit_note_original_not_found", "original",
                   f"no invoice {draft.original!r} was found for this tenant")
    if original.fiscal_number != draft.original:
        # The caller looked up the wrong invoice: a bug, not a client error.
        raise ValueError(
            f"OriginalInvoice {original.fiscal_number!r} passed for original {draft.original!r}"
        )
    allowed = CREDIT_NOTE_ORIGINAL_TYPES[draft.type]
    if original.type not in allowed:
        raise fail("credit_note_original_type_mismatch", "original",
                   f"a {draft.type} credits {' or '.join(sorted(allowed))} invoices, "
                   f"{draft.original} is {original.type}")
    with money_context():
        remaining = original.total - original.credited_total
        if totals.total > remaining:
            raise fail("credit_note_exceeds_original", "original",
                       f"this credit note ({money_str(totals.total)}) exceeds what remains to be "
                       f"credited on {draft.original} ({money_str(max(remaining, _ZERO))})")


def _check_payments(payments: tuple[Payment, ...] | None, totals: Totals) -> None:
    if payments is None:
        return
    paid = _ZERO
    for i, payment in enumerate(payments):
        at = f"payments[{i}]"
        if payment.method not in PAYMENT_METHODS:
            raise fail("invalid_payment_method", f"{at}.method",
                       f"{payment.method!r} is not one of {', '.join(sorted(PAYMENT_METHODS))}")
        amount = check_decimal(
            payment.amount, f"{at}.amount",
            invalid_code="payment_amount_invalid", precision_code="payment_amount_precision",
            places=LIMITS.price_places, minimum=_ZERO, minimum_inclusive=True,
            maximum=LIMITS.max_amount,
        )
        with money_context():
            paid += amount
    if paid != totals.payable:
        raise fail("payments_mismatch", "payments",
                   f"payments add up to {money_str(paid)}, the payable amount is "
                   f"{money_str(totals.payable)}")


def _exchange_info(
    exchange: Exchange | None, rate: Decimal | None, totals: Totals
) -> ExchangeInfo | None:
    if exchange is None or rate is None:
        return None
    exchange_date = _as_date(exchange.date)
    assert exchange_date is not None  # checked by _check_exchange
    return ExchangeInfo(
        currency=exchange.currency,
        rate=rate,
        date=exchange_date,
        total_foreign=round_money_ratio(totals.total, rate),
    )


JURISDICTION = DRC()
